"""Python client of `skillbuild serve` (standard library only).

    from skillbuild_client import Client, Vulnerable

    sb = Client("/run/skillbuild/api.sock")            # or Client("http://127.0.0.1:8700", token=...)
    sb.install("weather", ["requests>=2.31"], version="1")
    doc = sb.run("weather", "result = inputs['x'] * 2", {"x": 21}, timeout=10, memory="256m")
    doc["result"]                                       # 42 (or doc.result)
    with sb.session("weather", version="1") as s:       # one interpreter, many calls
        s.run("import json; x = 1")
        s.run("result = x + 1").result                  # 2
    sb.run("weather", "result = open('/data/in/a.csv').read()", files={"a.csv": b"x,y"})

Every method returns the JSON document `skillbuild <command> --json` prints
for the same request, decoded. A request that fails raises a
SkillbuildError subclass chosen by the CLI's exit code (BadInput 2,
Vulnerable 3, NotFound 4, Temporary 75, Failed otherwise) carrying that
code, the HTTP status and the error document. What the code of a run did
(an exception, a timeout, an OOM kill) is not an error of the request: it
is in the returned document ("error", "timed_out", "oom_killed").
"""

from .client import (
    BadInput,
    Client,
    Document,
    Duration,
    Failed,
    NotFound,
    Progress,
    Result,
    Session,
    SessionEnded,
    Size,
    SkillbuildError,
    Temporary,
    Vulnerable,
)

__all__ = [
    "BadInput",
    "Client",
    "Document",
    "Duration",
    "Failed",
    "NotFound",
    "Progress",
    "Result",
    "Session",
    "SessionEnded",
    "Size",
    "SkillbuildError",
    "Temporary",
    "Vulnerable",
]
