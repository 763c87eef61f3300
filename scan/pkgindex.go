package scan

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/skillbuild/skillbuild/lock"
)

// The per-package index lets a scan read only the packages it checks
// instead of decompressing and parsing the whole export. It is derived
// from the export at `db import` and `db update` and stored beside it:
//
//	skillbuild-osv-index 1 <export sha256> <export size> <export mtime ns> <table length>\n
//	<table: one "name offset length sha256\n" line per package, sorted>
//	<blobs: per package, the JSON array of the records that affect it>
//
// The database is still identified by the export's sha256 (the verdict
// records it). The index is used only while the manifest names the export
// it was made from and the export file on disk is the one it was made from
// (same size and modification time; otherwise Open verifies the export's
// sha256 as before), and each blob is checked against its own sha256 when
// it is read.
const pkgIndexMagic = "skillbuild-osv-index 1"

func pkgIndexPath(root string) string { return filepath.Join(Dir(root), "PyPI.idx") }

// pkgSpan is where one package's blob is in the index file.
type pkgSpan struct {
	off, n int64
	sum    string
}

// pkgIndex is an open index: the table in memory, blobs read on demand.
type pkgIndex struct {
	f     *os.File
	base  int64 // offset of the first blob
	spans map[string]pkgSpan
	path  string

	mu    sync.Mutex
	cache map[string][]entry
}

// writePkgIndex writes the index of recs, made from the export at
// exportPath whose sha256 is exportSHA, atomically at path.
func writePkgIndex(path string, recs []*Record, exportPath, exportSHA string) error {
	st, err := os.Stat(exportPath)
	if err != nil {
		return fmt.Errorf("index vulnerability database: %w", err)
	}
	byName := map[string][]*Record{}
	for _, rec := range recs {
		seen := map[string]bool{}
		for i := range rec.Affected {
			name := lock.NormalizeName(rec.Affected[i].Package.Name)
			if !seen[name] {
				seen[name] = true
				byName[name] = append(byName[name], rec)
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var table, blobs bytes.Buffer
	for _, n := range names {
		b, err := json.Marshal(byName[n])
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(&table, "%s %d %d %s\n", n, blobs.Len(), len(b), hex.EncodeToString(sum[:]))
		blobs.Write(b)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "%s %s %d %d %d\n", pkgIndexMagic, exportSHA, st.Size(), st.ModTime().UnixNano(), table.Len())
	out.Write(table.Bytes())
	out.Write(blobs.Bytes())
	return writeAtomic(path, out.Bytes())
}

// openPkgIndex opens the index at path if it was made from the export at
// exportPath with sha256 exportSHA and that file is unchanged; ok is false
// when it is missing or made from another export (the caller loads and
// verifies the export instead).
func openPkgIndex(path, exportPath, exportSHA string) (idx *pkgIndex, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open vulnerability database index: %w", err)
	}
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	br := bufio.NewReaderSize(f, 64<<10)
	header, err := br.ReadString('\n')
	if err != nil {
		return nil, false, nil
	}
	fields := strings.Fields(strings.TrimPrefix(header, pkgIndexMagic))
	if !strings.HasPrefix(header, pkgIndexMagic+" ") || len(fields) != 4 || fields[0] != exportSHA {
		return nil, false, nil
	}
	st, err := os.Stat(exportPath)
	if err != nil || strconv.FormatInt(st.Size(), 10) != fields[1] || strconv.FormatInt(st.ModTime().UnixNano(), 10) != fields[2] {
		return nil, false, nil
	}
	tableLen, err := strconv.ParseInt(fields[3], 10, 64)
	if err != nil || tableLen < 0 {
		return nil, false, nil
	}
	table := make([]byte, tableLen)
	if _, err := io.ReadFull(br, table); err != nil {
		return nil, false, nil
	}
	idx = &pkgIndex{f: f, base: int64(len(header)) + tableLen, spans: map[string]pkgSpan{}, path: path, cache: map[string][]entry{}}
	for line := range bytes.Lines(table) {
		parts := strings.Fields(string(line))
		if len(parts) != 4 {
			return nil, false, nil
		}
		off, err1 := strconv.ParseInt(parts[1], 10, 64)
		n, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, false, nil
		}
		idx.spans[parts[0]] = pkgSpan{off: off, n: n, sum: parts[3]}
	}
	return idx, true, nil
}

// entries reads and compiles the records of one package.
func (idx *pkgIndex) entries(name string) ([]entry, error) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if es, ok := idx.cache[name]; ok {
		return es, nil
	}
	sp, ok := idx.spans[name]
	if !ok {
		return nil, nil
	}
	b := make([]byte, sp.n)
	if _, err := idx.f.ReadAt(b, idx.base+sp.off); err != nil {
		return nil, idx.corrupt(name, err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != sp.sum {
		return nil, idx.corrupt(name, errors.New("checksum mismatch"))
	}
	var recs []*Record
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, idx.corrupt(name, err)
	}
	var es []entry
	for _, rec := range recs {
		for i := range rec.Affected {
			if lock.NormalizeName(rec.Affected[i].Package.Name) == name {
				es = append(es, compile(rec, &rec.Affected[i]))
			}
		}
	}
	idx.cache[name] = es
	return es, nil
}

func (idx *pkgIndex) corrupt(name string, err error) error {
	return fmt.Errorf("vulnerability database index %s is corrupt at package %s (%v): %s: %w", idx.path, name, err, fixHint, errdefs.ErrFailedPrecondition)
}
