#!/usr/bin/env python3
"""Write the list of files `pip install --root DESTDIR --report REPORT` put
in place, as absolute paths without DESTDIR, one a line, so that `make
uninstall` can remove exactly them (pip cannot uninstall from a --root).

usage: pyrecord.py REPORT DESTDIR PREFIX > MANIFEST
"""
import csv
import json
import os
import sys
import sysconfig

report, destdir, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
with open(report) as f:
    names = [i["metadata"]["name"] for i in json.load(f)["install"]]
want = {n.lower().replace("-", "_") for n in names}
out = []
# Where this Python's install schemes put packages for prefix (Debian's
# pip adds /local: --prefix /usr lands in /usr/local/lib/python3/...).
sites = set()
for scheme in sysconfig.get_scheme_names():
    try:
        paths = sysconfig.get_paths(scheme, vars={"base": prefix,
                                                  "platbase": prefix})
    except KeyError:
        continue
    for k in ("purelib", "platlib"):
        if k in paths and paths[k].startswith(prefix):
            sites.add(destdir + paths[k])
for site in sorted(sites):
    if not os.path.isdir(site):
        continue
    for d in os.listdir(site):
        if not d.endswith(".dist-info"):
            continue
        if d[:-len(".dist-info")].rsplit("-", 1)[0].lower() not in want:
            continue
        info = os.path.join(site, d)
        with open(os.path.join(info, "RECORD"), newline="") as f:
            for row in csv.reader(f):
                if row:
                    out.append(os.path.normpath(os.path.join(site, row[0])))
        out.append(info)
for p in out:
    print(p[len(destdir):] if destdir and p.startswith(destdir) else p)
