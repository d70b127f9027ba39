"""The demo/benchmark CSV generator and its independent oracle of the expected table."""

from __future__ import annotations

import csv
import io
import re
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from dynamo_ingest_cli.datagen import (
    BAD_ROW_KINDS,
    GeneratedFile,
    attribute_types_for_layout,
    expected_items,
    expected_outcome,
    generate_csv,
    schema_for_layout,
)

# Cents as DynamoDB stores them: 12.3 and 5, never 12.30 or 5.00.
AMOUNT = re.compile(r"(?:0|[1-9]\d*)(?:\.\d?[1-9])?")


def _records(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as source:
        header, *records = list(csv.reader(source))
    return header, records


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedFile:
    """20,000 rows with a duplicate every 97 and a bad row every 1,000 (all five kinds 4 times)."""
    path = tmp_path_factory.mktemp("datagen") / "orders.csv"
    return generate_csv(path, 20_000, seed=11, duplicate_every=97, bad_every=1000)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = generate_csv(tmp_path / "a.csv", 3000, seed=3)
    again = generate_csv(tmp_path / "b.csv", 3000, seed=3)
    other = generate_csv(tmp_path / "c.csv", 3000, seed=4)
    assert first.path.read_bytes() == again.path.read_bytes()
    assert first.path.read_bytes() != other.path.read_bytes()


def test_row_count_header_and_bytes(generated: GeneratedFile) -> None:
    header, records = _records(generated.path)
    assert len(records) == generated.rows == 20_000
    assert tuple(header) == generated.header == tuple(n for n, _ in schema_for_layout())
    assert generated.bytes == generated.path.stat().st_size
    assert 170 <= generated.bytes / generated.rows <= 230


def test_output_is_exactly_what_the_csv_module_writes(generated: GeneratedFile) -> None:
    header, records = _records(generated.path)
    rewritten = io.StringIO()
    csv.writer(rewritten, lineterminator="\r\n").writerows([header, *records])
    written, expected = generated.path.read_bytes().decode("utf-8"), rewritten.getvalue()
    first_difference = next(
        (i for i, (a, b) in enumerate(zip(written, expected, strict=False)) if a != b), None)
    assert first_difference is None, written[first_difference or 0:][:200]
    assert len(written) == len(expected)


def test_line_endings_are_selectable(tmp_path: Path) -> None:
    crlf = generate_csv(tmp_path / "crlf.csv", 2000, line_ending="crlf").path.read_bytes()
    lf = generate_csv(tmp_path / "lf.csv", 2000, line_ending="lf").path.read_bytes()
    embedded = lf.count(b"\n") - 2001  # newlines inside quoted notes
    assert embedded > 0
    assert b"\r" not in lf
    assert crlf.count(b"\r\n") == 2001
    assert crlf.replace(b"\r\n", b"\n") == lf


def test_bad_rows_are_the_advertised_kinds_at_the_advertised_records(
        generated: GeneratedFile) -> None:
    _, records = _records(generated.path)
    assert sorted(generated.expected_rejects) == list(range(1000, 20_001, 1000))
    assert Counter(generated.expected_rejects.values()) == dict.fromkeys(BAD_ROW_KINDS, 4)
    for record_no, kind in generated.expected_rejects.items():
        row = records[record_no - 1]
        if kind == "column_count":
            assert len(row) == 7
            continue
        assert len(row) == 8
        order_id, amount, quantity = row[1], row[3], row[4]
        if kind == "empty_key":
            assert order_id == ""
        elif kind == "too_many_digits":
            assert len(amount.replace(".", "").strip("0")) == 39
        elif kind == "not_a_number":
            with pytest.raises(ValueError):
                float(amount)
        else:
            assert kind == "nan"
            assert quantity == "NaN"


def test_clean_rows_have_the_layouts_types(generated: GeneratedFile) -> None:
    _, records = _records(generated.path)
    clean = [r for n, r in enumerate(records, 1) if n not in generated.expected_rejects]
    assert all(len(r) == 8 and r[1] for r in clean)
    assert all(AMOUNT.fullmatch(r[3]) for r in clean)  # double, kept as written by DynamoDB
    assert any("." not in r[3] for r in clean)
    assert any(re.fullmatch(r"\d+\.\d", r[3]) for r in clean)
    assert all(r[4].isdigit() for r in clean)  # bigint
    assert {r[5] for r in clean} == {"true", "false"}  # boolean
    ids = [r[1] for r in clean]
    numeric_looking = [i for i in ids if i.isdigit()]
    assert numeric_looking
    assert all(i.startswith("0") for i in numeric_looking)
    assert len(numeric_looking) < len(ids) / 2  # orderId is clearly a string column
    assert dict(schema_for_layout())["orderId"] == "string"
    notes = "".join(r[7] for r in clean)
    for needle in (",", '"', "\n", "é", "ü", "😀"):
        assert needle in notes
    assert any(r[2] == "" for r in clean)
    assert any(r[7] == "" for r in clean)


def test_duplicates_reuse_earlier_keys_with_new_values(generated: GeneratedFile) -> None:
    _, records = _records(generated.path)
    seen: dict[str, list[str]] = {}
    duplicates = 0
    for record_no, row in enumerate(records, 1):
        if record_no in generated.expected_rejects:
            continue
        previous = seen.get(row[1])
        if previous is not None:
            duplicates += 1
            assert previous[0] == row[0]  # same batch: (batchId, orderId) keys also repeat
            assert previous != row
        seen[row[1]] = row
    assert duplicates == generated.expected_duplicates > 0
    assert len(seen) == generated.expected_item_count


def test_rejected_keys_never_come_back(generated: GeneratedFile) -> None:
    _, records = _records(generated.path)
    rejected_ids = {records[n - 1][1] for n in generated.expected_rejects} - {""}
    clean_ids = {r[1] for n, r in enumerate(records, 1) if n not in generated.expected_rejects}
    assert rejected_ids
    assert not rejected_ids & clean_ids


def test_oracle_agrees_with_the_generator(generated: GeneratedFile) -> None:
    outcome = expected_outcome(generated.path, key_columns=("orderId",),
                               column_types=attribute_types_for_layout())
    assert outcome.rows_read == generated.rows
    assert set(outcome.rejected) == set(generated.expected_rejects)
    for record_no, reason in outcome.rejected.items():
        kind = generated.expected_rejects[record_no]
        assert reason.split(":")[0] == ("not_a_number" if kind == "nan" else kind)
    assert outcome.duplicate_rows == generated.expected_duplicates
    assert len(outcome.items) == generated.expected_item_count
    assert outcome.rows_read == (len(outcome.items) + len(outcome.rejected)
                                 + outcome.duplicate_rows)
    notes = [item.get("note", {}).get("S", "") for item in outcome.items.values()]
    assert any(note.startswith("Correction") for note in notes)  # the later row won
    sample = next(iter(outcome.items.values()))
    assert set(sample["amount"]) == {"N"}
    assert set(sample["isPriority"]) == {"BOOL"}
    composite = generated.expected_items(key_columns=("batchId", "orderId"))
    assert len(composite) == len(outcome.items)


HAND_WRITTEN = (
    'id,Name,price,qty,flag,note\r\n'
    '007,Ann,1.50,2,true,"a, b"\r\n'        # 1: replaced by record 5
    '2,Bob,,3,FALSE,\r\n'                   # 2: empty price and note
    '3,Cy,2.00,4,true\r\n'                  # 3: wrong column count
    ',Dee,1,1,true,x\r\n'                   # 4: empty key
    '007,Ann B,1.75,2,false,"say ""hi""\nbye"\r\n'  # 5: last 007 wins (quoted newline)
    '8,Eve,1234567890123456789012345678901234567.89,1,true,x\r\n'  # 6: 39 digits
    '9,Fay,3.10,NaN,true,x\r\n'             # 7: NaN
    '10,Gus,1e3,5,maybe,x\r\n'              # 8: not a boolean
    '007,Ann C,oops,2,true,x\r\n'           # 9: bad row does not replace 007
    '11,Hal,0012.50,1,true,😀\r\n'          # 10: numbers kept as written
    '12,Ida, 4.00 ,2, TRUE ,\r\n'             # 11: spaces around N and BOOL ignored
)
HAND_TYPES = {"id": "S", "price": "N", "qty": "N", "flag": "BOOL"}


def test_oracle_on_a_hand_written_file(tmp_path: Path) -> None:
    path = tmp_path / "hand.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HAND_WRITTEN.encode())  # with a BOM
    outcome = expected_outcome(path, key_columns=("id",), column_types=HAND_TYPES,  # type: ignore[arg-type]
                               exact_numbers=False)
    assert outcome.items == {
        ("007",): {"id": {"S": "007"}, "Name": {"S": "Ann B"}, "price": {"N": "1.75"},
                   "qty": {"N": "2"}, "flag": {"BOOL": False}, "note": {"S": 'say "hi"\nbye'}},
        ("2",): {"id": {"S": "2"}, "Name": {"S": "Bob"}, "qty": {"N": "3"},
                 "flag": {"BOOL": False}},
        ("11",): {"id": {"S": "11"}, "Name": {"S": "Hal"}, "price": {"N": "0012.50"},
                  "qty": {"N": "1"}, "flag": {"BOOL": True}, "note": {"S": "😀"}},
        ("12",): {"id": {"S": "12"}, "Name": {"S": "Ida"}, "price": {"N": "4.00"},
                  "qty": {"N": "2"}, "flag": {"BOOL": True}},
    }
    assert {n: r.split(":")[0] for n, r in outcome.rejected.items()} == {
        3: "column_count", 4: "empty_key", 6: "too_many_digits", 7: "not_a_number",
        8: "not_a_boolean", 9: "not_a_number"}
    assert outcome.rows_read == 11
    assert outcome.duplicate_rows == 1


def test_oracle_rejects_catalog_numbers_aws_would_not_return_as_written(tmp_path: Path) -> None:
    path = tmp_path / "hand.csv"
    path.write_text(HAND_WRITTEN, encoding="utf-8", newline="")
    outcome = expected_outcome(path, key_columns=("id",), column_types=HAND_TYPES)  # type: ignore[arg-type]
    assert {n: r for n, r in outcome.rejected.items() if r.startswith("not_kept")} == {
        1: "not_kept_as_written: price='1.50'", 7: "not_kept_as_written: price='3.10'",
        8: "not_kept_as_written: price='1e3'", 10: "not_kept_as_written: price='0012.50'",
        11: "not_kept_as_written: price=' 4.00 '"}
    assert outcome.items[("007",)]["price"] == {"N": "1.75"}
    assert outcome.duplicate_rows == 0  # record 1, which record 5 replaced, is rejected


def test_oracle_empty_value_and_number_form_options(tmp_path: Path) -> None:
    path = tmp_path / "hand.csv"
    path.write_text(HAND_WRITTEN, encoding="utf-8", newline="")
    items = expected_items(path, key_columns=("id",), column_types=HAND_TYPES,  # type: ignore[arg-type]
                           empty_value="null", numbers="canonical", exact_numbers=False)
    assert items[("2",)]["price"] == {"NULL": True}
    assert items[("2",)]["note"] == {"NULL": True}
    assert items[("11",)]["price"] == {"N": "12.5"}
    assert items[("007",)]["price"] == {"N": "1.75"}


def test_memory_does_not_grow_with_rows(tmp_path: Path) -> None:
    peaks = []
    for rows in (300, 5_000):
        tracemalloc.start()
        generate_csv(tmp_path / f"{rows}.csv", rows, bad_every=100, duplicate_every=10)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # The rejects map grows by a few entries; everything else is the fixed value pools.
    assert peaks[1] - peaks[0] < 256 * 1024, peaks


@pytest.mark.parametrize(("argument", "value"), [("duplicate_every", 1), ("bad_every", 0)])
def test_nonsense_spacing_is_refused(tmp_path: Path, argument: str, value: int) -> None:
    with pytest.raises(ValueError, match=argument):
        generate_csv(tmp_path / "x.csv", 10, **{argument: value})  # type: ignore[arg-type]


def test_no_duplicates_or_bad_rows_when_disabled(tmp_path: Path) -> None:
    clean = generate_csv(tmp_path / "clean.csv", 5000, duplicate_every=None, bad_every=None)
    outcome = expected_outcome(clean.path, key_columns=("orderId",),
                               column_types=attribute_types_for_layout())
    assert clean.expected_duplicates == outcome.duplicate_rows == 0
    assert clean.expected_rejects == outcome.rejected == {}
    assert len(outcome.items) == 5000
