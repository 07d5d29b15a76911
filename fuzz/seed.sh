#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the attachments and bodies of the
# fixtures (fixtures/**/*.eml), so each target starts from real files of its
# kind. Files are named by their SHA-1, so running it again adds nothing
# twice. Large files (bombs) are left out: they make slow seeds.
#
#   fuzz/seed.sh            # from anywhere in the repository
set -euo pipefail
cd "$(dirname "$0")"
python3 - <<'PY'
import email, email.policy, hashlib, os, pathlib, zipfile, io

MAX = 64 * 1024
root = pathlib.Path("..")
out = pathlib.Path("corpus")
counts = {}

def put(target, data):
    if not data or len(data) > MAX:
        return
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    p = d / hashlib.sha1(data).hexdigest()
    if not p.exists():
        p.write_bytes(data)
        counts[target] = counts.get(target, 0) + 1

def kind(data, name, ctype):
    name = (name or "").lower()
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data.startswith(b"PK"):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except Exception:
            return "zip"
        return "office" if "[Content_Types].xml" in names or "mimetype" in names else "zip"
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if data.startswith(b"{\\rtf"):
        return "rtf"
    if name.endswith((".csv", ".tsv")) or "csv" in ctype:
        return "csv"
    if name.endswith((".htm", ".html")) or ctype == "text/html":
        return "html"
    return None

for path in sorted(root.glob("fixtures/**/*.eml")):
    raw = path.read_bytes()
    put("message", raw)
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in msg.walk():
        if part.is_multipart():
            continue
        data = part.get_payload(decode=True)
        if not data:
            continue
        target = kind(data, part.get_filename(), part.get_content_type())
        if target:
            put(target, data)

for target in sorted(counts):
    print(f"{target}: {counts[target]} new seeds")
PY
