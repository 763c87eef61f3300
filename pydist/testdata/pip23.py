"""Writes pip23.json: what pip 23.0's own code makes of the pages, wheel
file names and metadata files in cases.json (pydist's tests,
PYDIST_GOLDEN=1; run by the base image's python3 when given, else the
host's, which must have pip 23.0.x)."""
import email
import json
import sys
import warnings

warnings.simplefilter("ignore")
import pip
from pip._internal.index.collector import IndexContent, parse_links
from pip._internal.models.wheel import Wheel
from pip._internal.exceptions import InvalidWheelFilename

assert pip.__version__.startswith("23.0"), pip.__version__
cases = json.load(open(sys.argv[1]))
out = {"pages": [], "wheels": [], "metadata": []}


def link_dict(link):
    return {
        "url": link.url,
        "without_fragment": link.url_without_fragment,
        "filename": link.filename,
        "ext": link.ext,
        "requires_python": link.requires_python,
        "yanked": link.yanked_reason,
        "dist_info_metadata": link.dist_info_metadata,
        "hash": [link.hash_name, link.hash] if link.hash_name else None,
        "metadata_url": link.metadata_link().url if link.metadata_link() else None,
    }


for p in cases["pages"]:
    ct = "application/vnd.pypi.simple.v1+json" if p.get("json") else "text/html"
    page = IndexContent(p["body"].encode(), ct, encoding=None, url=p["url"], cache_link_parsing=False)
    try:
        links = [link_dict(l) for l in parse_links(page)]
        out["pages"].append({"links": links})
    except Exception as e:  # pip fails on the page
        out["pages"].append({"error": type(e).__name__})
for w in cases["wheels"]:
    try:
        wh = Wheel(w)
        out["wheels"].append({"name": wh.name, "version": wh.version, "build": wh.build_tag or "",
                              "tags": sorted(str(t) for t in wh.file_tags)})
    except InvalidWheelFilename:
        out["wheels"].append({"invalid": True})
for m in cases["metadata"]:
    msg = email.message_from_string(m)
    fields = {}
    for k in ("Name", "Version", "Requires-Dist", "Requires-Python", "Provides-Extra", "Summary"):
        v = msg.get_all(k)
        if v is not None:
            fields[k] = [str(x) for x in v]
    out["metadata"].append({"fields": fields, "defects": len(msg.defects)})
json.dump(out, sys.stdout, indent=0, sort_keys=True)
