"""Read an .xlsx back with the standard library (zip + XML), for the report tests: no extra
dependency, and it sees exactly what Excel would (shared strings, numbers, panes, filters)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def _col_index(ref: str) -> int:
    letters = re.match(r"[A-Z]+", ref)
    assert letters is not None
    n = 0
    for ch in letters.group(0):
        n = n * 26 + ord(ch) - 64
    return n - 1


class Workbook:
    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path)
        wb = ElementTree.fromstring(self.zip.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(self.zip.read("xl/_rels/workbook.xml.rels"))
        targets = {r.get("Id"): r.get("Target") for r in rels}
        self.sheets: dict[str, str] = {}
        for sheet in wb.find("m:sheets", NS) or []:
            self.sheets[sheet.get("name") or ""] = "xl/" + (targets[sheet.get(REL)] or "")
        self.strings: list[str] = []
        if "xl/sharedStrings.xml" in self.zip.namelist():
            sst = ElementTree.fromstring(self.zip.read("xl/sharedStrings.xml"))
            for si in sst.findall("m:si", NS):
                self.strings.append("".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")))

    @property
    def names(self) -> list[str]:
        return list(self.sheets)

    def xml(self, sheet: str) -> ElementTree.Element:
        return ElementTree.fromstring(self.zip.read(self.sheets[sheet]))

    def rows(self, sheet: str) -> list[list[object]]:
        """Cell values by row: shared strings as str, numbers as int (the report writes no floats)."""
        out: list[list[object]] = []
        for row in self.xml(sheet).iter(f"{{{NS['m']}}}row"):
            r = int(row.get("r") or 0) - 1
            while len(out) <= r:
                out.append([])
            for c in row.findall("m:c", NS):
                col = _col_index(c.get("r") or "A")
                v = c.find("m:v", NS)
                if v is None:
                    value: object = None
                elif c.get("t") == "s":
                    value = self.strings[int(v.text or 0)]
                else:
                    text = v.text or ""
                    assert re.fullmatch(r"-?\d+", text), f"a non-integer number {text!r} in {sheet}"
                    value = int(text)
                while len(out[r]) <= col:
                    out[r].append(None)
                out[r][col] = value
        return out

    def frozen_rows(self, sheet: str) -> int:
        pane = self.xml(sheet).find(".//m:pane", NS)
        return int(float(pane.get("ySplit") or 0)) if pane is not None and pane.get("state") == "frozen" else 0

    def has_autofilter(self, sheet: str) -> bool:
        return self.xml(sheet).find("m:autoFilter", NS) is not None
