package scan

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
)

// The per-package index lets a scan read only the packages it checks,
// already compiled, instead of decompressing and parsing the whole export
// and every version string its records list. It is derived from the export
// at `db import` and `db update` and stored beside it:
//
//	skillbuild-osv-index 2 <export sha256> <export size> <export mtime ns> <packages> <table sha256>\n
//	<table: per package, sorted by name: blob offset u64, blob length u32, name offset u32, name length u32, blob sha256>
//	<names: the package names, concatenated>
//	<blobs: per package, its compiled entries (see encodePkg)>
//
// A scan opens the table (a few kilobytes per thousand packages, checked
// against its sha256), binary-searches it for each package it checks, and
// reads and checks that package's blob alone; nothing of the other
// packages is parsed.
//
// A blob holds the package's versions in PEP 440 order (one string per
// equal class) and its entries with every version replaced by its rank in
// that order. A scan parses the pinned version, places it among the ranks
// with a binary search (a handful of parses), and then matches every
// entry with integer comparisons only.
//
// The database is still identified by the export's sha256 (the verdict
// records it). The index is used only while the manifest names the export
// it was made from and the export file on disk is the one it was made from
// (same size and modification time; otherwise Open verifies the export's
// sha256 as before).
const pkgIndexMagic = "skillbuild-osv-index 2"

// tableEntrySize is the size of one package's table entry.
const tableEntrySize = 8 + 4 + 4 + 4 + sha256.Size

func pkgIndexPath(root string) string { return filepath.Join(Dir(root), "PyPI.idx") }

// pkgIndex is an open index: the table in memory, blobs read on demand.
type pkgIndex struct {
	f     *os.File
	path  string
	table []byte // n × tableEntrySize
	names []byte
	base  int64 // offset of the first blob
}

// writePkgIndex writes the index of index (the compiled entries by
// normalized name), made from the export at exportPath whose sha256 is
// exportSHA, atomically at path.
func writePkgIndex(path string, index map[string][]entry, exportPath, exportSHA string) error {
	st, err := os.Stat(exportPath)
	if err != nil {
		return fmt.Errorf("index vulnerability database: %w", err)
	}
	names := make([]string, 0, len(index))
	for n := range index {
		names = append(names, n)
	}
	slices.Sort(names)
	var table, nameBuf, blobs bytes.Buffer
	for _, n := range names {
		b := encodePkg(index[n])
		sum := sha256.Sum256(b)
		var e [tableEntrySize]byte
		binary.LittleEndian.PutUint64(e[0:], uint64(blobs.Len()))
		binary.LittleEndian.PutUint32(e[8:], uint32(len(b)))
		binary.LittleEndian.PutUint32(e[12:], uint32(nameBuf.Len()))
		binary.LittleEndian.PutUint32(e[16:], uint32(len(n)))
		copy(e[20:], sum[:])
		table.Write(e[:])
		nameBuf.WriteString(n)
		blobs.Write(b)
	}
	head := sha256.New()
	head.Write(table.Bytes())
	head.Write(nameBuf.Bytes())
	var out bytes.Buffer
	fmt.Fprintf(&out, "%s %s %d %d %d %x\n", pkgIndexMagic, exportSHA, st.Size(), st.ModTime().UnixNano(), len(names), head.Sum(nil))
	out.Write(table.Bytes())
	out.Write(nameBuf.Bytes())
	out.Write(blobs.Bytes())
	return writeAtomic(path, out.Bytes())
}

// openPkgIndex opens the index at path if it was made from the export at
// exportPath with sha256 exportSHA and that file is unchanged; ok is false
// when it is missing, of another format or made from another export (the
// caller loads and verifies the export instead).
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
	// The header is one short line; read it with the start of the table.
	buf := make([]byte, 4<<10)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, false, nil
	}
	buf = buf[:n]
	nl := bytes.IndexByte(buf, '\n')
	if nl < 0 || !bytes.HasPrefix(buf, []byte(pkgIndexMagic+" ")) {
		return nil, false, nil
	}
	fields := strings.Fields(string(buf[len(pkgIndexMagic):nl]))
	if len(fields) != 5 || fields[0] != exportSHA {
		return nil, false, nil
	}
	st, err := os.Stat(exportPath)
	if err != nil || strconv.FormatInt(st.Size(), 10) != fields[1] || strconv.FormatInt(st.ModTime().UnixNano(), 10) != fields[2] {
		return nil, false, nil
	}
	count, err := strconv.ParseInt(fields[3], 10, 32)
	if err != nil || count < 0 {
		return nil, false, nil
	}
	tableLen := int(count) * tableEntrySize
	// The names follow the table; their total length is the end of the
	// last one.
	head := make([]byte, tableLen)
	if _, err := f.ReadAt(head, int64(nl+1)); err != nil {
		return nil, false, nil
	}
	namesLen := 0
	if count > 0 {
		last := head[tableLen-tableEntrySize:]
		namesLen = int(binary.LittleEndian.Uint32(last[12:])) + int(binary.LittleEndian.Uint32(last[16:]))
	}
	names := make([]byte, namesLen)
	if _, err := f.ReadAt(names, int64(nl+1+tableLen)); err != nil {
		return nil, false, nil
	}
	sum := sha256.New()
	sum.Write(head)
	sum.Write(names)
	if fmt.Sprintf("%x", sum.Sum(nil)) != fields[4] {
		return nil, false, nil
	}
	return &pkgIndex{f: f, path: path, table: head, names: names, base: int64(nl + 1 + tableLen + namesLen)}, true, nil
}

// span returns the blob of package name in the table: its offset, length
// and sha256.
func (idx *pkgIndex) span(name string) (off int64, n int, sum []byte, ok bool) {
	count := len(idx.table) / tableEntrySize
	entryAt := func(i int) []byte { return idx.table[i*tableEntrySize : (i+1)*tableEntrySize] }
	nameAt := func(e []byte) string {
		o, l := binary.LittleEndian.Uint32(e[12:]), binary.LittleEndian.Uint32(e[16:])
		if uint64(o)+uint64(l) > uint64(len(idx.names)) {
			return ""
		}
		return string(idx.names[o : o+l])
	}
	lo, hi := 0, count
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if nameAt(entryAt(m)) < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == count || nameAt(entryAt(lo)) != name {
		return 0, 0, nil, false
	}
	e := entryAt(lo)
	return int64(binary.LittleEndian.Uint64(e[0:])), int(binary.LittleEndian.Uint32(e[8:])), e[20:], true
}

// blob reads and checks the blob of package name into *buf (grown as
// needed); nil if the database has no records for it.
func (idx *pkgIndex) blob(name string, buf *[]byte) ([]byte, error) {
	off, n, want, ok := idx.span(name)
	if !ok {
		return nil, nil
	}
	if cap(*buf) < n {
		*buf = make([]byte, max(n, 2*cap(*buf)))
	}
	b := (*buf)[:n]
	if _, err := idx.f.ReadAt(b, idx.base+off); err != nil {
		return nil, idx.corrupt(name, err)
	}
	if sum := sha256.Sum256(b); !bytes.Equal(sum[:], want) {
		return nil, idx.corrupt(name, errors.New("checksum mismatch"))
	}
	return b, nil
}

// match returns the findings (not yet merged) of package name at version
// ver (raw as given, v parsed); buf is scratch space for the blob.
func (idx *pkgIndex) match(name, raw string, v version, buf *[]byte) ([]Finding, error) {
	b, err := idx.blob(name, buf)
	if err != nil || b == nil {
		return nil, err
	}
	hits, err := matchPkg(b, name, raw, v)
	if err != nil {
		return nil, idx.corrupt(name, err)
	}
	return hits, nil
}

func (idx *pkgIndex) corrupt(name string, err error) error {
	return fmt.Errorf("vulnerability database index %s is corrupt at package %s (%v): %s: %w", idx.path, name, err, fixHint, errdefs.ErrFailedPrecondition)
}
