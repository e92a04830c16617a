"""The examples of ``docs/wire-format.md`` decode, encode and are rejected as the document
says, so that it cannot drift from the code (``patterns._wire``).
"""

from __future__ import annotations

import re

import pytest
from _wire_cases import DOC, REASONS, rejected

from patterns import Envelope, decode, encode


# ---------------------------------------------------------------------------- docs/wire-format.md
def doc_blocks(lang: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{re.escape(lang)}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def doc_hex_examples() -> list[bytes]:
    return [bytes.fromhex("".join(block.split())) for block in doc_blocks("hex")]


def test_doc_has_examples() -> None:
    assert len(doc_hex_examples()) >= 4
    assert len(doc_blocks("hex-rejected")) >= 1
    assert len(doc_blocks("cbor-bytes")) >= 1


@pytest.mark.parametrize("index", range(len(doc_hex_examples()) if DOC.exists() else 0))
def test_doc_hex_example_decodes(index: int) -> None:
    data = doc_hex_examples()[index]
    env = decode(data)
    assert isinstance(env, Envelope)
    assert encode(env) == data


def test_doc_envelope_expressions_match_hex_examples() -> None:
    text = DOC.read_text(encoding="utf-8")
    expressions = re.findall(r"`(Envelope\(.*?\))`", text)
    examples = doc_hex_examples()
    assert len(expressions) == len(examples)
    for source, data in zip(expressions, examples, strict=True):
        env = eval(source, {"__builtins__": {}}, {"Envelope": Envelope, "True": True, "None": None})
        assert encode(env) == data, source
        assert decode(data) == env, source


def test_doc_byte_breakdowns_match_examples() -> None:
    examples = doc_hex_examples()
    for block in doc_blocks("cbor-bytes"):
        tokens = [tok for line in block.splitlines() for tok in line.split("#", 1)[0].split()]
        assert tokens and all(re.fullmatch(r"[0-9a-f]{2}", tok) for tok in tokens), block
        data = bytes.fromhex("".join(tokens))
        assert any(data in example for example in examples), block


def test_doc_rejected_frames() -> None:
    lines = [
        line.split("#", 1)[0].split()
        for block in doc_blocks("hex-rejected")
        for line in block.splitlines()
        if line.split("#", 1)[0].strip()
    ]
    assert len(lines) >= 10
    for reason, hex_frame in lines:
        assert reason in REASONS
        assert rejected(bytes.fromhex(hex_frame)).reason == reason, hex_frame
