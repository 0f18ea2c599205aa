#!/usr/bin/env python3
"""Builds catalog/critical_goods.csv, shortfall's default commodity catalog.

Usage (from anywhere; paths default relative to the repository root):

    python3 tools/build_catalog.py [DATA_DIR] [--out FILE] [--check]

DATA_DIR (default: ../shared/data relative to the repository root) must hold
critical_goods_hs2022_map.csv, harmonized-system.csv and
wco_who_covid19_ed3_transcription_imedkrisna.csv (see DATA_DIR/SOURCES.md).

What it does:
  * every row of the critical-goods map becomes a catalog rule, keeping the
    map's note and adding the HS 2022 description (and the WCO/WHO list entry
    when the code is on it);
  * every HS 2022 prefix is checked against harmonized-system.csv, every map
    description against the nomenclature's text; any mismatch aborts;
  * the judgement calls of this script (exclusions, HS 2017 rows, revision
    tags) are added with notes that say they are judgement calls;
  * self-checks run the catalog's semantics (per-group longest prefix) over
    known cases before anything is written.

--check compares the would-be output with the existing file and exits 1 when
they differ (for CI: the committed catalog must match its generator).
The output is deterministic: same inputs, same bytes.

Python 3 standard library only.
"""

import argparse
import csv
import io
import os
import re
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA_DIR = os.path.join(REPO_ROOT, "..", "shared", "data")
DEFAULT_OUT = os.path.join(REPO_ROOT, "catalog", "critical_goods.csv")

MAP_FILE = "critical_goods_hs2022_map.csv"
HS_FILE = "harmonized-system.csv"
WCO_FILE = "wco_who_covid19_ed3_transcription_imedkrisna.csv"

HEADER = ["group", "hs_prefix", "hs_revision", "rule", "note"]
GROUPS = ("batteries", "critical_minerals", "pharmaceuticals", "ppe", "semiconductors")

# The C++ side embeds the catalog in a raw string literal with this delimiter.
RAW_STRING_END = ')sfcatalog"'

UNVERIFIED = ("HS 2017 structure as recalled from the WCO HS 2017-2022 "
              "correlation tables; not in ../shared/data, not verified here")

# Map rows whose code exists only in HS 2022 (new subheadings): tagged 2022
# instead of any. Every map row whose note mentions HS2017 must be listed here
# (checked), so a new change note in the map cannot slip through.
HS2022_ONLY = {
    "401512": "new in HS 2022 (the map note: HS 2017 4015.11 became 4015.12)",
    "382211": "new in HS 2022 (HS 2017 3822.00 was split, per the map note)",
    "382212": "new in HS 2022 (HS 2017 3822.00 was split, per the map note on 382211)",
    "382213": "new in HS 2022 (HS 2017 3822.00 was split, per the map note on 382211)",
    "382219": "new in HS 2022 (HS 2017 3822.00 was split, per the map note on 382211)",
}

# Map rows this script turns into exclude rules. The row stays in the catalog
# (with its source note) so the decision is visible and survives a broader
# include added later.
MAP_DEMOTED = {
    ("ppe", "220890"): (
        "catalog: judgement call, kept as EXCLUDE: 2208.90 is spirits and "
        "spirituous beverages n.e.c. in 2208, i.e. every spirit other than "
        "brandy, whisky, rum, gin, vodka and liqueurs (tequila and mezcal "
        "among them), so on MX-US corridors beverage trade could drive the "
        "ppe volumes; undenatured ethanol for sanitiser stays covered by 2207.10"),
}

# Remarks this script adds to map rows (the map's own note is kept).
MAP_REMARKS = {
    ("semiconductors", "8541"): (
        "catalog: the heading is broader than the group; LEDs (8541.41), "
        "photovoltaic cells and modules (8541.42/.43), HS 2017 8541.40 and "
        "mounted piezo-electric crystals (8541.60) are excluded below"),
    ("semiconductors", "8486"): (
        "catalog: machines for flat panel displays (8486.30) are excluded below"),
    ("pharmaceuticals", "2933"): (
        "catalog: broad heading (many non-drug chemicals); melamine (2933.61), "
        "caprolactam (2933.71) and azinphos-methyl (2933.92) are excluded below; "
        "other industrial heterocycles remain in (judgement call)"),
    ("ppe", "630790"): (
        "catalog: broad subheading (made-up textile articles n.e.c.); HS-6 cannot "
        "separate face masks from the rest; kept as the WCO/WHO list cites it"),
    ("ppe", "392690"): (
        "catalog: broad subheading (plastic articles n.e.c.); HS-6 cannot separate "
        "face shields and the like from the rest; kept as the WCO/WHO list cites it"),
    ("ppe", "481890"): (
        "catalog: broad subheading (paper articles n.e.c.); kept as the WCO/WHO "
        "list cites it"),
    ("batteries", "282739"): (
        "catalog: broad subheading (chlorides n.e.c., not only battery materials); "
        "kept as the map lists it"),
    ("critical_minerals", "811292"): (
        "catalog: revision any; in HS 2017 8112.92 also covered unwrought hafnium "
        "and rhenium, which HS 2022 moved to 8112.31/.41 (" + UNVERIFIED + "); "
        "so HS 2017-coded hafnium and rhenium count here and HS 2022-coded ones "
        "do not (judgement call: no hafnium/rhenium rows added beyond the map)"),
    ("critical_minerals", "811299"): (
        "catalog: revision any; in HS 2017 8112.99 also covered wrought hafnium "
        "and rhenium, which HS 2022 moved to 8112.39/.49 (" + UNVERIFIED + "); "
        "see 811292"),
}

# Rules this script adds. hs2017_only: the prefix is an HS 2017 code absent
# from HS 2022 (checked against harmonized-system.csv); otherwise the prefix
# must exist in HS 2022. wco: the row rests on the WCO/WHO list (checked).
EXTRA_RULES = [
    # --- HS 2017 codes that changed, so old-coded goods still classify ---
    dict(group="ppe", prefix="401511", revision="2017", rule="include",
         hs2017_only=True, wco=True,
         note="HS 2017 4015.11: surgical gloves of vulcanised rubber "
              "(SOURCES.md: medical gloves; WCO/WHO COVID-19 list ed.3, PPE); "
              "HS 2022 4015.12 per the map note; no 4015.11 in HS 2022"),
    dict(group="ppe", prefix="382200", revision="2017", rule="include",
         hs2017_only=True, wco=True,
         note="HS 2017 3822.00: diagnostic or laboratory reagents (WCO/WHO "
              "COVID-19 list ed.3, testing kits); split in HS 2022 into "
              "3822.11-.19 (ppe) and 3822.90 (certified reference materials "
              "and other reagents, not in ppe). Judgement call: all of "
              "HS 2017 3822.00 counts as ppe, reference materials included, "
              "because HS 2017 cannot tell them apart"),
    # --- semiconductors: 8541 and 8486 are broader than the group ---
    dict(group="semiconductors", prefix="854141", revision="2022", rule="exclude",
         note="HS 2022 8541.41 light-emitting diodes: judgement call, lighting "
              "components rather than the chips the group tracks"),
    dict(group="semiconductors", prefix="854142", revision="2022", rule="exclude",
         note="HS 2022 8541.42 photovoltaic cells not in modules: judgement "
              "call, solar cells are a market apart from the chips the group "
              "tracks and could swamp its volumes"),
    dict(group="semiconductors", prefix="854143", revision="2022", rule="exclude",
         note="HS 2022 8541.43 photovoltaic cells in modules or panels: "
              "judgement call, as 8541.42"),
    dict(group="semiconductors", prefix="854140", revision="any", rule="exclude",
         hs2017_only=True,
         note="HS 2017 8541.40 photosensitive semiconductor devices including "
              "photovoltaic cells and LEDs (" + UNVERIFIED + "); absent from "
              "HS 2022. Judgement call: excluded as a whole, like HS 2022 "
              ".41-.43, which also drops HS 2017-coded photodiodes and other "
              "photosensitive devices (HS 2022 8541.49, included). Revision "
              "any so that an unversioned 854140 is not caught by the 8541 "
              "heading under HS 2022"),
    dict(group="semiconductors", prefix="854160", revision="any", rule="exclude",
         note="8541.60 mounted piezo-electric crystals (same code in HS 2017): "
              "judgement call, not semiconductor devices though in the same "
              "heading"),
    dict(group="semiconductors", prefix="848630", revision="any", rule="exclude",
         note="8486.30 machines for manufacturing flat panel displays (same "
              "code in HS 2017): judgement call, not semiconductor "
              "manufacturing equipment"),
    # --- pharmaceuticals: 2933 holds bulk industrial chemicals too ---
    dict(group="pharmaceuticals", prefix="293361", revision="any", rule="exclude",
         note="2933.61 melamine: judgement call, a resin feedstock, not a "
              "pharmaceutical ingredient"),
    dict(group="pharmaceuticals", prefix="293371", revision="any", rule="exclude",
         note="2933.71 6-hexanelactam (epsilon-caprolactam): judgement call, "
              "the nylon-6 monomer, not a pharmaceutical ingredient"),
    dict(group="pharmaceuticals", prefix="293392", revision="2022", rule="exclude",
         note="HS 2022 2933.92 azinphos-methyl (ISO), an insecticide: judgement "
              "call; revision 2022 only because the code was not checked "
              "against HS 2017"),
]

# HS 2017 codes on the WCO/WHO list that are absent from HS 2022 but get no
# HS 2017 row, with the reason. Every such code must be here or in EXTRA_RULES.
WCO_NOT_ADDED = {
    "902780": "HS 2017 9027.80 test instruments: the map puts their HS 2022 "
              "successors in no group",
    "853950": "HS 2017 8539.50 LED lamps: the map puts their HS 2022 successors "
              "(8539.51/.52) in no group",
    "560300": "5603 nonwovens: the map puts heading 5603 in no group",
    "870300": "8703 motor vehicles (ambulances): the map puts heading 8703 in no group",
}

# Self-checks: (code, revision, expected groups). Run on the built catalog.
EXPECTATIONS = [
    ("810520", "2022", {"batteries", "critical_minerals"}),
    ("810530", "2022", {"critical_minerals"}),
    ("250410", "2022", {"batteries", "critical_minerals"}),
    ("250490", "2022", {"batteries", "critical_minerals"}),
    ("260500", "2022", {"batteries", "critical_minerals"}),
    ("854231", "2022", {"semiconductors"}),
    ("854143", "2022", set()),
    ("854149", "2022", {"semiconductors"}),
    ("854140", "2017", set()),
    ("854140", None, set()),
    ("401511", "2017", {"ppe"}),
    ("401511", None, {"ppe"}),
    ("401512", "2022", {"ppe"}),
    ("382200", "2017", {"ppe"}),
    ("382200", None, {"ppe"}),
    ("382290", "2022", set()),
    ("300215", "2022", {"ppe", "pharmaceuticals"}),
    ("220890", "2022", set()),
    ("220710", "2022", {"ppe"}),
    ("293371", "2022", set()),
    ("293390", "2022", {"pharmaceuticals"}),
    ("870323", None, set()),
    ("080390", None, set()),
]


def fail(message):
    sys.exit("build_catalog: error: " + message)


def read_csv(path):
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")


def dotted(code):
    return code if len(code) <= 4 else code[:4] + "." + code[4:]


def build_rules(data_dir):
    hs = {r["hscode"]: r for r in read_csv(os.path.join(data_dir, HS_FILE))}
    goods_map = read_csv(os.path.join(data_dir, MAP_FILE))
    wco = {}
    for r in read_csv(os.path.join(data_dir, WCO_FILE)):
        wco.setdefault(r["hshs"], r)
    if not hs or not goods_map or not wco:
        fail(f"an input file in {data_dir} is empty")

    rules = []
    seen = set()

    def add(group, prefix, revision, rule, note):
        if group not in GROUPS:
            fail(f"unknown group {group!r}")
        if not re.fullmatch(r"[0-9]{2,6}", prefix):
            fail(f"{group} {prefix}: hs_prefix is not 2 to 6 digits")
        for rev in (("2017", "2022") if revision == "any" else (revision,)):
            if (group, prefix, rev) in seen:
                fail(f"duplicate rule for {group} {prefix} revision {rev}")
            seen.add((group, prefix, rev))
        rules.append(dict(group=group, prefix=prefix, revision=revision,
                          rule=rule, note=note))

    for i, row in enumerate(goods_map, start=2):
        where = f"{MAP_FILE}:{i}"
        group, code, note = row["group"], row["hs_code"], row["note"].strip()
        entry = hs.get(code)
        if entry is None:
            fail(f"{where}: HS 2022 code {code} ({group}) is not in {HS_FILE}")
        if entry["description"] != row["hs2022_description"]:
            fail(f"{where}: description of {code} differs from {HS_FILE}")
        if int(row["level"]) != len(code):
            fail(f"{where}: level {row['level']} does not match code {code}")
        if "HS2017" in note and code not in HS2022_ONLY:
            fail(f"{where}: the note mentions an HS 2017 change ({note!r}) that "
                 "this script does not handle; update HS2022_ONLY/EXTRA_RULES")
        parts = [f"HS 2022 {dotted(code)} (map): {entry['description']}"]
        if note:
            parts.append("map note: " + note)
        w = wco.get(code) if len(code) == 6 else None
        if w is not None:
            parts.append(f"WCO/WHO COVID-19 list ed.3: HS 2017 {w['hs']} ({w['desc'].strip()})")
        revision = "2022" if code in HS2022_ONLY else "any"
        if code in HS2022_ONLY:
            parts.append("revision 2022: " + HS2022_ONLY[code])
        rule = "include"
        if (group, code) in MAP_DEMOTED:
            rule = "exclude"
            parts.append(MAP_DEMOTED[(group, code)])
        if (group, code) in MAP_REMARKS:
            parts.append(MAP_REMARKS[(group, code)])
        add(group, code, revision, rule, "; ".join(parts))

    map_keys = {(r["group"], r["hs_code"]) for r in goods_map}
    for key in list(MAP_DEMOTED) + list(MAP_REMARKS):
        if key not in map_keys:
            fail(f"{key} is annotated in this script but not in {MAP_FILE}")
    for code in HS2022_ONLY:
        if not any(c == code for _, c in map_keys):
            fail(f"HS2022_ONLY lists {code}, which is not in {MAP_FILE}")

    for extra in EXTRA_RULES:
        prefix = extra["prefix"]
        if extra.get("hs2017_only"):
            if prefix in hs:
                fail(f"{prefix} is marked HS 2017-only but exists in {HS_FILE}")
        elif prefix not in hs:
            fail(f"HS 2022 prefix {prefix} ({extra['group']}) is not in {HS_FILE}")
        if extra.get("wco") and prefix not in wco:
            fail(f"{prefix} is said to come from the WCO/WHO list but is not in {WCO_FILE}")
        add(extra["group"], prefix, extra["revision"], extra["rule"], extra["note"])

    hs2017_rows = {e["prefix"] for e in EXTRA_RULES if e.get("hs2017_only")}
    for code, w in sorted(wco.items()):
        if code in hs or code in hs2017_rows:
            continue
        if code not in WCO_NOT_ADDED:
            fail(f"WCO/WHO list code {w['hs']} is not in HS 2022 and has neither an "
                 "HS 2017 row nor a reason in WCO_NOT_ADDED")
    for code in WCO_NOT_ADDED:
        if code not in wco or code in hs:
            fail(f"WCO_NOT_ADDED lists {code}, which is not an HS 2017-only WCO code")

    rules.sort(key=lambda r: (r["group"], r["prefix"], r["revision"]))
    return rules, goods_map


def classify(rules, code, revision):
    """The catalog semantics; mirrors operators/catalog.cc."""
    def at(rev):
        out = set()
        for group in GROUPS:
            best = None
            for r in rules:
                if (r["group"] == group and r["revision"] in (rev, "any")
                        and code.startswith(r["prefix"])
                        and (best is None or len(r["prefix"]) > len(best["prefix"]))):
                    best = r
            if best is not None and best["rule"] == "include":
                out.add(group)
        return out
    if revision is not None:
        return at(revision)
    return at("2022") or at("2017")


def self_check(rules, goods_map):
    for code, revision, want in EXPECTATIONS:
        got = classify(rules, code, revision)
        if got != want:
            fail(f"self-check: {code} under {revision or 'unspecified'} is "
                 f"{sorted(got)}, expected {sorted(want)}")
    # Each 6-digit map row not demoted is still in its group (no exclude
    # swallowed it), and each exclude rule overrides some include.
    for row in goods_map:
        key = (row["group"], row["hs_code"])
        if len(row["hs_code"]) == 6 and key not in MAP_DEMOTED:
            revs = ("2022",) if row["hs_code"] in HS2022_ONLY else ("2022", "2017")
            for rev in revs:
                if row["group"] not in classify(rules, row["hs_code"], rev):
                    fail(f"self-check: map row {key} does not classify into its group "
                         f"under HS {rev}")
    for r in rules:
        if r["rule"] != "exclude" or (r["group"], r["prefix"]) in MAP_DEMOTED:
            continue
        if not any(o["group"] == r["group"] and o["rule"] == "include"
                   and r["prefix"].startswith(o["prefix"]) and o["prefix"] != r["prefix"]
                   for o in rules):
            fail(f"self-check: exclude {r['group']} {r['prefix']} overrides no include")


HEADER_COMMENT = """\
# shortfall commodity catalog: which HS codes belong to which critical-goods group.
#
# GENERATED by tools/build_catalog.py from ../shared/data: {map},
# {hs}, {wco}.
# Do not edit by hand: change the script and rebuild with
#   python3 tools/build_catalog.py
# catalog/README.md explains provenance, the judgement calls and the HS 2017 rows.
#
# Format: lines starting with '#' are comments; blank lines are ignored. The first other
# line is the header 'group,hs_prefix,hs_revision,rule,note', then one rule per line:
#   group        [a-z][a-z0-9_]*, at most 64 characters; at most 63 distinct groups
#   hs_prefix    2 to 6 digits: a chapter (85), heading (8541) or subheading (854231)
#   hs_revision  2022, 2017 or any: the HS revision(s) the rule applies to
#   rule         include or exclude
#   note         free text; RFC 4180 quoting ("a, b"; "" is a quote); no line breaks
# A group has at most one rule per (hs_prefix, revision); 'any' counts as both revisions.
#
# Semantics: for each group separately, among the group's rules that apply to the code's
# revision and whose hs_prefix is a prefix of the 6-digit code, the LONGEST prefix decides:
# include -> the code is in the group, exclude -> it is not; no matching rule -> it is not.
# One code can be in several groups (cobalt ores 260500: batteries and critical_minerals).
# A goods line without hs_version is classified as HS 2022 and, only if that yields no
# group at all, as HS 2017.
"""


def render(rules):
    out = io.StringIO()
    out.write(HEADER_COMMENT.format(map=MAP_FILE, hs=HS_FILE, wco=WCO_FILE))
    counts = {}
    for r in rules:
        key = (r["group"], r["revision"], r["rule"])
        counts[key] = counts.get(key, 0) + 1
    out.write("#\n# Rows (group: revision rule count): " + str(len(rules)) + " in all\n")
    for group in GROUPS:
        cells = [f"{rev} {rule} {counts[(group, rev, rule)]}"
                 for rev in ("any", "2022", "2017") for rule in ("include", "exclude")
                 if (group, rev, rule) in counts]
        out.write(f"#   {group}: " + ", ".join(cells) + "\n")
    out.write("\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for r in rules:
        writer.writerow([r[k] for k in ("group", "prefix", "revision", "rule", "note")])
    text = out.getvalue()
    if RAW_STRING_END in text:
        fail(f"the catalog text contains {RAW_STRING_END!r}, which ends the C++ raw string")
    if any("\n" in r["note"] or "\r" in r["note"] for r in rules):
        fail("a note contains a line break")
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", default=DEFAULT_DATA_DIR,
                        help="directory with the source CSVs (default: ../shared/data "
                             "relative to the repository root)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="catalog file to write (default: catalog/critical_goods.csv)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if --out differs from what would be written")
    args = parser.parse_args()

    rules, goods_map = build_rules(args.data_dir)
    self_check(rules, goods_map)
    text = render(rules)
    if args.check:
        try:
            with open(args.out, encoding="utf-8", newline="") as f:
                current = f.read()
        except OSError as e:
            fail(f"cannot read {args.out}: {e.strerror}")
        if current != text:
            print(f"build_catalog: {args.out} is out of date; run python3 tools/build_catalog.py",
                  file=sys.stderr)
            return 1
        return 0
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    print(f"build_catalog: wrote {len(rules)} rules to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
