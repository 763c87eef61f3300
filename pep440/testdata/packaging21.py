"""Writes packaging21.json: what pip's vendored packaging 21.3 says about
the versions and specifiers in cases.json (run by pep440's tests with
PEP440_GOLDEN=1; needs pip 23.0.x, which vendors packaging 21.3)."""
import json
import sys
import warnings

warnings.simplefilter("ignore")
from pip._vendor.packaging import __about__
from pip._vendor.packaging.specifiers import InvalidSpecifier, LegacySpecifier, Specifier, SpecifierSet
from pip._vendor.packaging.utils import canonicalize_version
from pip._vendor.packaging.version import InvalidVersion, Version

assert __about__.__version__ == "21.3", __about__.__version__
cases = json.load(open(sys.argv[1]))
out = {"versions": [], "specifiers": [], "sets": []}
valid = []
for s in cases["versions"]:
    try:
        v = Version(s)
    except InvalidVersion:
        out["versions"].append({"in": s, "valid": False})
        continue
    valid.append(v)
    out["versions"].append({
        "in": s, "valid": True, "str": str(v), "canonical": canonicalize_version(v),
        "public": v.public, "base": v.base_version, "pre": v.is_prerelease, "post": v.is_postrelease,
        "local": v.local or "",
    })
# order: for each valid version, its rank among all valid versions
ranks = sorted(set(range(len(valid))), key=lambda i: valid[i])
order = [0] * len(valid)
r = -1
prev = None
for i in ranks:
    if prev is None or valid[i] != prev:
        r += 1
    prev = valid[i]
    order[i] = r
out["order"] = order
bits = lambda f: "".join("1" if f(v) else "0" for v in valid)
for s in cases["specifiers"]:
    e = {"in": s}
    try:
        sp = Specifier(s)
        e["kind"] = "pep440"
        e["str"] = str(sp)
        e["prereleases"] = sp.prereleases
        e["contains"] = bits(lambda v: sp.contains(v))
        e["contains_pre"] = bits(lambda v: sp.contains(v, prereleases=True))
    except InvalidSpecifier:
        try:
            LegacySpecifier(s)
            e["kind"] = "legacy"
        except InvalidSpecifier:
            e["kind"] = "invalid"
    out["specifiers"].append(e)
for s in cases["sets"]:
    e = {"in": s}
    try:
        ss = SpecifierSet(s)
        if any(isinstance(x, LegacySpecifier) for x in ss):
            e["kind"] = "legacy"
        else:
            e["kind"] = "pep440"
            e["str"] = str(ss)
            e["prereleases"] = ss.prereleases
            e["contains"] = bits(lambda v: ss.contains(v))
            e["contains_pre"] = bits(lambda v: ss.contains(v, prereleases=True))
            e["filter"] = [str(v) for v in ss.filter(valid)]
            e["filter_pre"] = [str(v) for v in ss.filter(valid, prereleases=True)]
    except InvalidSpecifier:
        e["kind"] = "invalid"
    out["sets"].append(e)
json.dump(out, sys.stdout, indent=0, sort_keys=True)
