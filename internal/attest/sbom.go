package attest

import (
	"encoding/json"
	"fmt"
	"sort"

	digest "github.com/opencontainers/go-digest"
	"github.com/package-url/packageurl-go"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"
)

// Package is one locked distribution as the SBOM records it.
type Package struct {
	Name     string // PEP 503-normalized
	Version  string
	Filename string // the wheel (or sdist) file
	SHA256   string // hex digest of Filename
}

// SBOMInput is what an SBOM describes: a skill image's lock and base.
type SBOMInput struct {
	SkillID, SkillVersion string
	// LockDigest identifies the lock (also an image label).
	LockDigest digest.Digest
	Packages   []Package
	// Base is the base image reference, BaseDigest the digest it was
	// pinned to.
	Base       string
	BaseDigest digest.Digest
}

// SBOM is the SPDX 2.3 JSON document of in. It is a pure function of in:
// the same lock and base give the same bytes (the creation time is the
// epoch, like the image's), so a rebuild yields the same attestation.
func SBOM(in SBOMInput) ([]byte, error) {
	if in.SkillID == "" || in.LockDigest == "" {
		return nil, fmt.Errorf("sbom: skill id and lock digest are required")
	}
	root := common.ElementID("Skill")
	doc := spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      fmt.Sprintf("skill %s version %s", in.SkillID, in.SkillVersion),
		DocumentNamespace: fmt.Sprintf("https://spdx.org/spdxdocs/skillbuild-%s-%s-%s", in.SkillID, in.SkillVersion, in.LockDigest.Encoded()),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "skillbuild"}},
			Created:  "1970-01-01T00:00:00Z",
		},
	}
	doc.Packages = append(doc.Packages, &spdx.Package{
		PackageName:             in.SkillID,
		PackageSPDXIdentifier:   root,
		PackageVersion:          in.SkillVersion,
		PackageDownloadLocation: "NOASSERTION",
		PrimaryPackagePurpose:   "CONTAINER",
		PackageComment:          "lock " + in.LockDigest.String(),
	})
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", string(root)), Relationship: "DESCRIBES",
	})
	if in.Base != "" {
		base := &spdx.Package{
			PackageName:             in.Base,
			PackageSPDXIdentifier:   "BaseImage",
			PackageDownloadLocation: "NOASSERTION",
			PrimaryPackagePurpose:   "CONTAINER",
		}
		if in.BaseDigest != "" {
			base.PackageVersion = in.BaseDigest.String()
			base.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: in.BaseDigest.Encoded()}}
		}
		doc.Packages = append(doc.Packages, base)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(root)), RefB: common.MakeDocElementID("", "BaseImage"), Relationship: "DESCENDANT_OF",
		})
	}
	pkgs := append([]Package(nil), in.Packages...)
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	for i, p := range pkgs {
		id := common.ElementID(fmt.Sprintf("Package-%d", i+1))
		purl := packageurl.NewPackageURL(packageurl.TypePyPi, "", p.Name, p.Version, nil, "").ToString()
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName:             p.Name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          p.Version,
			PackageFileName:         p.Filename,
			PackageDownloadLocation: "NOASSERTION",
			PackageChecksums:        []common.Checksum{{Algorithm: common.SHA256, Value: p.SHA256}},
			PrimaryPackagePurpose:   "LIBRARY",
			PackageExternalReferences: []*spdx.PackageExternalReference{
				{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl},
			},
		})
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", string(root)), RefB: common.MakeDocElementID("", string(id)), Relationship: "CONTAINS",
		})
	}
	return json.Marshal(doc)
}
