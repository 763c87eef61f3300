"""Writes packaging21.json: what pip's vendored packaging 21.3 makes of the
requirements and markers in cases.json (pep508's tests, PEP508_GOLDEN=1)."""
import json
import sys
import warnings

warnings.simplefilter("ignore")
from pip._vendor.packaging import __about__
from pip._vendor.packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
from pip._vendor.packaging.specifiers import LegacySpecifier

assert __about__.__version__ == "21.3", __about__.__version__
cases = json.load(open(sys.argv[1]))
env = cases["env"]
out = {"requirements": [], "markers": []}
for s in cases["requirements"]:
    e = {"in": s}
    try:
        r = Requirement(s)
    except InvalidRequirement:
        e["kind"] = "invalid"
        out["requirements"].append(e)
        continue
    if any(isinstance(x, LegacySpecifier) for x in r.specifier):
        e["kind"] = "legacy"
    else:
        e["kind"] = "ok"
        e["name"] = r.name
        e["extras"] = sorted(r.extras)
        e["specifier"] = str(r.specifier)
        e["url"] = r.url or ""
        e["str"] = str(r)
        e["marker"] = str(r.marker) if r.marker else ""
    out["requirements"].append(e)
for s in cases["markers"]:
    e = {"in": s}
    try:
        m = Marker(s)
    except InvalidMarker:
        e["kind"] = "invalid"
        out["markers"].append(e)
        continue
    e["kind"] = "ok"
    e["str"] = str(m)
    res = []
    for extra in cases["extras"]:
        env2 = dict(env, extra=extra)
        try:
            res.append("1" if m.evaluate(env2) else "0")
        except (UndefinedComparison, UndefinedEnvironmentName):
            res.append("E")
    e["eval"] = "".join(res)
    out["markers"].append(e)
json.dump(out, sys.stdout, indent=0, sort_keys=True)
