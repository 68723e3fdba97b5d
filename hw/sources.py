"""Merging Verilog sources that several imported multipliers bring into one design.

Netlists of one library commonly define the same helper modules (half and full adders, carry
blocks) under the same name, and two versions of a netlist may even share their top module's
name. :func:`merge_sources` turns the sources of many imported multipliers into one set that
defines every module exactly once:

* a module's *identity* is the SHA-256 of its text and of the identities of the modules of its
  own file that it instantiates (so ``FA`` is the same module in two files only when its text
  and its ``HA`` are the same);
* modules that share a name and an identity are emitted once (the first file in order keeps
  it, the later files drop their copy);
* modules that share a name but differ are all renamed to ``NAME_<8 hex digits of identity>``,
  and every reference to them inside their own file follows (whole-identifier replacement;
  escaped identifiers are left alone);
* file names that would clash get the first 8 hex digits of their text's SHA-256.

The result depends only on the inputs and their order, never on paths or the run, so the
same design gives the same bytes. Text outside modules (comments, ```timescale``) is kept.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["Module", "split_modules", "merge_sources"]

_TOKEN = re.compile(
    r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\])*\"|\\\S+|`?[A-Za-z_][A-Za-z0-9_$]*", re.DOTALL)
_START = {"module": "endmodule", "macromodule": "endmodule", "primitive": "endprimitive"}


class Module:
    """One ``module ... endmodule`` block: ``name``, ``start``/``end`` offsets in the file
    text and the identifiers used inside it."""

    def __init__(self, name: str, start: int, end: int, identifiers: set):
        self.name, self.start, self.end, self.identifiers = name, start, end, identifiers


def split_modules(text: str) -> list[Module]:
    """The module (and UDP) blocks of a Verilog text, found at token level (comments and
    strings are skipped)."""
    modules, current, idents = [], None, set()
    tokens = iter(_TOKEN.finditer(text))
    for tok in tokens:
        word = tok.group()
        if word.startswith(("//", "/*", '"', "\\", "`")):
            continue
        if current is None:
            if word in _START:
                name_tok = next(tokens, None)
                while name_tok is not None and name_tok.group().startswith(("//", "/*")):
                    name_tok = next(tokens, None)
                if name_tok is None:
                    break
                current = (name_tok.group(), tok.start(), _START[word])
                idents = set()
        elif word == current[2]:
            modules.append(Module(current[0], current[1], tok.end(), idents))
            current = None
        else:
            idents.add(word)
    return modules


def _identities(text: str, modules: list[Module]) -> dict[str, str]:
    by_name = {m.name: m for m in modules}
    memo: dict[str, str] = {}

    def ident(name: str, stack=()) -> str:
        if name not in memo:
            m = by_name[name]
            deps = sorted(ident(d, stack + (name,)) for d in m.identifiers
                          if d in by_name and d != name and d not in stack)
            memo[name] = hashlib.sha256(
                "\0".join([text[m.start:m.end], *deps]).encode()).hexdigest()
        return memo[name]

    return {m.name: ident(m.name) for m in modules}


def _rename(text: str, mapping: dict[str, str]) -> str:
    if not mapping:
        return text

    def sub(tok):
        word = tok.group()
        return mapping.get(word, word)

    return _TOKEN.sub(sub, text)


def merge_sources(sources: list[tuple[str, str]]) -> dict[str, str]:
    """Merge ``[(file name, Verilog text), ...]`` (see the module docstring); return
    ``{file name: text}`` in input order, files left empty by the merge omitted."""
    parsed = []
    variants: dict[str, set] = {}
    for fname, text in sources:
        modules = split_modules(text)
        idents = _identities(text, modules)
        parsed.append((fname, text, modules, idents))
        for name, ident in idents.items():
            variants.setdefault(name, set()).add(ident)
    clashing = {name for name, ids in variants.items() if len(ids) > 1}
    emitted: set = set()          # (name, identity) already in the output
    texts: dict[str, str] = {}
    for fname, text, modules, idents in parsed:
        mapping = {m.name: f"{m.name}_{idents[m.name][:8]}" for m in modules
                   if m.name in clashing}
        pieces, pos, kept = [], 0, 0
        for m in modules:
            pieces.append(text[pos:m.start])
            key = (m.name, idents[m.name])
            if key in emitted:
                pieces.append(f"// module {mapping.get(m.name, m.name)}: defined above "
                              "(identical)")
            else:
                emitted.add(key)
                pieces.append(_rename(text[m.start:m.end], mapping))
                kept += 1
            pos = m.end
        pieces.append(text[pos:])
        if modules and not kept:
            continue                            # everything it defines is already there
        merged = "".join(pieces)
        name = fname
        if name in texts and texts[name] != merged:
            stem, dot, ext = fname.rpartition(".")
            digest = hashlib.sha256(merged.encode()).hexdigest()[:8]
            name = f"{stem}_{digest}.{ext}" if dot else f"{fname}_{digest}"
        if texts.get(name, merged) == merged:
            texts[name] = merged
    return texts
