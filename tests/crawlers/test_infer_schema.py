"""infer_schema: header detection, Glue's type rules and CSV dialects on small real files."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from dynamo_ingest.core.errors import CatalogError, FileLayoutError

from crawlers.local_crawler import infer_schema, value_type, widen


def write(tmp_path: Path, content: str | bytes, name: str = "data.csv") -> Path:
    """A CSV file with exactly these bytes (text is written as UTF-8, newlines untouched)."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def column_type(tmp_path: Path, values: list[str]) -> str:
    """The type inferred for a ``value`` column holding ``values`` (beside a string key)."""
    body = "".join(f"k{i},{v}\n" for i, v in enumerate(values))
    schema = infer_schema(write(tmp_path, "key,value\n" + body))
    assert schema.columns[0].type == "string"
    return schema.columns[1].type


def test_header_names_and_types(tmp_path: Path) -> None:
    schema = infer_schema(write(tmp_path, "id,name,price,active\n1,ann,2.5,true\n2,bob,3,false\n"))
    assert schema.names == ("id", "name", "price", "active")
    assert [c.type for c in schema.columns] == ["bigint", "string", "double", "boolean"]
    assert (schema.delimiter, schema.quote_char, schema.has_header) == (",", '"', True)


def test_no_header_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no header row detected") as caught:
        infer_schema(write(tmp_path, "1,ann,2.5\n2,bob,3.5\n"))
    message = str(caught.value)
    assert "'1' parses as BIGINT" in message
    assert "needs a header row" in message


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "-2", "3"], "bigint"),
        (["1.5", "-0.25", "0.001"], "double"),
        (["1", "2.5"], "double"),
        (["true", "FALSE", "True"], "boolean"),
        (["1", "x"], "string"),
        (["true", "1"], "string"),
        (["1.5", "yes"], "string"),
        (["", "5", ""], "bigint"),
        (["", ""], "string"),
        ([" 5"], "string"),  # disable_value_trimming: values are typed as written
        (["NaN", "1"], "string"),
        (["2024-01-15"], "string"),
        (["9223372036854775807", "-9223372036854775808"], "bigint"),
        (["9223372036854775808"], "double"),  # beyond 64 bits, like Glue; kept exactly
    ],
)
def test_column_types_follow_glue(tmp_path: Path, values: list[str], expected: str) -> None:
    assert column_type(tmp_path, values) == expected


@pytest.mark.parametrize(("values", "glue_type", "example", "stored"), [
    (["10115", "02869", "90210"], "bigint", "02869", "2869"),  # zip codes
    (["1", "+3"], "bigint", "+3", "3"),
    (["2869.0", "1"], "double", "2869.0", "2869"),
    (["19.90", "5.25"], "double", "19.90", "19.9"),
    (["12", "6E2"], "double", "6E2", "600"),  # a part number that reads as an exponent
    ([".5"], "double", ".5", "0.5"),
    (["-7."], "double", "-7.", "-7"),
    (["-0"], "bigint", "-0", "0"),
    (["1234567890" * 4, "5"], "double", "1234567890" * 4, "a number it cannot hold"),
])
def test_numbers_dynamodb_would_not_keep_as_written_make_the_column_text(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, values: list[str], glue_type: str,
        example: str, stored: str) -> None:
    with caplog.at_level(logging.INFO, logger="crawlers.local_crawler"):
        assert column_type(tmp_path, values) == "string"
    assert (f"column 'value' is typed string, not {glue_type} as Glue's classifier would type "
            f"it: DynamoDB would store values such as {example!r} as {stored}, not as written; "
            "`--column_types value:N` loads the column as numbers") in caplog.text


def test_value_type_and_widen_rules() -> None:
    assert [value_type(v) for v in ("0", "0.0", "false", "abc", "١٢")] == [
        "bigint", "double", "boolean", "string", "string"]  # non-ASCII digits are text
    assert widen(None, "bigint") == "bigint"
    assert widen("bigint", "double") == widen("double", "bigint") == "double"
    assert widen("boolean", "bigint") == "string"
    assert widen("string", "double") == "string"


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";", "\x01"])
def test_delimiter_is_detected(tmp_path: Path, delimiter: str) -> None:
    rows = [["id", "note", "qty"], ["1", "a b", "2"], ["2", "c", "3"]]
    text = "".join(delimiter.join(r) + "\n" for r in rows)
    schema = infer_schema(write(tmp_path, text))
    assert schema.delimiter == delimiter
    assert schema.names == ("id", "note", "qty")
    assert [c.type for c in schema.columns] == ["bigint", "string", "bigint"]


def test_pipe_file_with_commas_in_values_is_pipe(tmp_path: Path) -> None:
    text = "id|note\n1|hello, world\n2|plain\n3|a, b, c\n"
    schema = infer_schema(write(tmp_path, text))
    assert schema.delimiter == "|"
    assert schema.names == ("id", "note")


def test_explicit_delimiter_wins(tmp_path: Path) -> None:
    schema = infer_schema(write(tmp_path, "a;b,c\n1;2,3\n"), delimiter=";")
    assert schema.names == ("a", "b,c")
    assert schema.delimiter == ";"


def test_bom_and_crlf(tmp_path: Path) -> None:
    schema = infer_schema(write(tmp_path, b"\xef\xbb\xbfid,name\r\n1,ann\r\n2,bob\r\n"))
    assert schema.names == ("id", "name")
    assert [c.type for c in schema.columns] == ["bigint", "string"]


def test_quoted_fields_with_delimiter_newline_and_doubled_quotes(tmp_path: Path) -> None:
    text = ('id,"last, first",qty\r\n'
            '1,"Doe, Jane",2\r\n'
            '2,"line one\nline two",3\r\n'
            '3,"say ""hi""",4\r\n')
    schema = infer_schema(write(tmp_path, text))
    assert schema.names == ("id", "last, first", "qty")
    assert [c.type for c in schema.columns] == ["bigint", "string", "bigint"]


def test_custom_quote_char(tmp_path: Path) -> None:
    schema = infer_schema(write(tmp_path, "id,note\n1,'a,b'\n2,'c'\n"), quote_char="'")
    assert schema.quote_char == "'"
    assert schema.names == ("id", "note")


def test_header_case_is_kept(tmp_path: Path) -> None:
    schema = infer_schema(write(tmp_path, "batchId,Amount\n1,2.5\n"))
    assert schema.names == ("batchId", "Amount")


def test_trailing_delimiter_drops_the_empty_last_column(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="crawlers.local_crawler"):
        schema = infer_schema(write(tmp_path, "id,name,\n1,ann,\n2,bob,\n"))
    assert schema.names == ("id", "name")
    assert schema.trailing_delimiter
    assert "every line ends with the delimiter: the empty last column is dropped" in caplog.text
    assert not infer_schema(write(tmp_path, "id,name\n1,ann\n", "plain.csv")).trailing_delimiter


def test_a_value_after_the_unnamed_last_column_is_left_to_the_job_to_reject(
        tmp_path: Path) -> None:
    # The header decides the layout; the job rejects the row holding x, with the reason.
    schema = infer_schema(write(tmp_path, "id,name,\n1,ann,x\n2,bob,\n"))
    assert (schema.names, schema.trailing_delimiter) == (("id", "name"), True)


def test_a_repeated_empty_last_name_is_still_an_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="column 2 value '' is not a valid Glue column name"):
        infer_schema(write(tmp_path, "id,,\n1,,\n"))


def test_long_header_value_only_allowed_in_last_column(tmp_path: Path) -> None:
    long_name = "n" * 150
    ok = infer_schema(write(tmp_path, f"id,{long_name}\n1,a\n", "ok.csv"))
    assert ok.names == ("id", long_name)
    with pytest.raises(CatalogError, match="column 1 value has 150 characters"):
        infer_schema(write(tmp_path, f"{long_name},id\na,1\n", "bad.csv"))


def test_control_character_in_header_is_not_a_column_name(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not a valid Glue column name"):
        infer_schema(write(tmp_path, 'id,"na\x07me"\n1,a\n'))


def test_names_equal_but_for_case_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="'id' and 'ID'"):
        infer_schema(write(tmp_path, "id,ID\n1,2\n"))


@pytest.mark.parametrize("delimiter", [None, ",", ";"])
def test_a_one_column_file_is_a_table(tmp_path: Path, delimiter: str | None) -> None:
    schema = infer_schema(write(tmp_path, "email\nann@example.com\nbob@example.com\n"),
                          delimiter=delimiter)
    assert [(c.name, c.type) for c in schema.columns] == [("email", "string")]


def test_a_one_column_file_of_numbers_is_typed(tmp_path: Path) -> None:
    schema = infer_schema(write(tmp_path, "id\n1\n2\n"))
    assert [(c.name, c.type) for c in schema.columns] == [("id", "bigint")]
    assert schema.delimiter == ","


def test_a_given_delimiter_that_leaves_the_header_whole_says_which_splits_it(
        tmp_path: Path) -> None:
    with pytest.raises(FileLayoutError) as caught:
        infer_schema(write(tmp_path, "id,name\ttab,val\n1,ann\tx,2\n"), delimiter=";")
    assert str(caught.value) == (
        f"{tmp_path / 'data.csv'}: the delimiter ';' does not split the header "
        "'id,name\\ttab,val' (1 field), but the first line holds other candidate delimiters: "
        "',' gives 3 fields, tab gives 2 fields. Pass `--delimiter ,`, or leave --delimiter "
        "out to detect it")
    assert "no header row detected" not in str(caught.value)


def test_the_type_says_it_came_from_the_sample(tmp_path: Path) -> None:
    path = write(tmp_path, "id,code\n" + "".join(f"k{i},{i}\n" for i in range(5)) + "k9,N/A\n")
    schema = infer_schema(path, sample_rows=5)
    assert (schema.columns[1].type, schema.columns[1].origin) == (
        "bigint", "the crawler's sample of the first 5 rows")


def test_header_without_data_rows_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no data rows") as caught:
        infer_schema(write(tmp_path, "id,name\n\n"))
    assert not caught.value.retryable  # the same object fails alike on every run


def test_the_job_reads_a_header_without_data_rows_as_text_columns(tmp_path: Path) -> None:
    schema = infer_schema(write(tmp_path, "id;Name\r\n"), require_rows=False)
    assert schema.names == ("id", "Name")
    assert [c.type for c in schema.columns] == ["string", "string"]
    assert schema.delimiter == ";"


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileLayoutError, match="is empty"):
        infer_schema(write(tmp_path, ""))


def test_a_value_over_the_csv_modules_default_field_limit_is_read(tmp_path: Path) -> None:
    # Python's csv refuses fields over 128 KiB by default; DynamoDB items hold 400 KB.
    big = "x" * 300_000
    schema = infer_schema(write(tmp_path, f"id,blob,n\na,{big},1\nb,\"{big}\",2\n"))
    assert schema.names == ("id", "blob", "n")
    assert [c.type for c in schema.columns] == ["string", "string", "bigint"]


def test_a_sample_whose_only_data_row_is_not_utf8_has_no_data_rows(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,name\n1,caf\xe9\n")  # Latin-1: the job rejects the row
    with pytest.raises(FileLayoutError, match="no data rows") as caught:
        infer_schema(path)
    assert "not UTF-8" in str(caught.value)  # says why the one row did not count
    schema = infer_schema(path, require_rows=False)
    assert schema.names == ("id", "name")
    assert [c.type for c in schema.columns] == ["string", "string"]


def test_rows_with_invalid_utf8_are_left_out_of_type_inference(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Were the bad row typed, its "bad..." value would not matter (b is text anyway), but its
    # "x9" in column a would widen the bigint column to string.
    path = write(tmp_path, b"id,a,b\r\nr1,1,x\r\nr2,2,y\r\nr3,x9,bad\xff\xfeutf\r\nr4,4,z\r\n")
    with caplog.at_level(logging.WARNING):
        schema = infer_schema(path)
    assert schema.names == ("id", "a", "b")
    assert [c.type for c in schema.columns] == ["string", "bigint", "string"]
    assert schema.delimiter == ","
    assert "1 of 4 sample data row(s) hold bytes that are not UTF-8" in caplog.text


def test_a_bad_row_does_not_sway_delimiter_detection(tmp_path: Path) -> None:
    schema = infer_schema(write(tmp_path, b"id|n\n1|2\n\xff|3\n4|5\n"))
    assert schema.delimiter == "|"
    assert [c.type for c in schema.columns] == ["bigint", "bigint"]


@pytest.mark.parametrize("content", [
    b"id,caf\xe9\n1,a\n2,b\n",                     # a Latin-1 header name
    b"\xef\xbb\xbfid,\xff\xfe\n1,a\n",               # after a BOM
    b"id,\"two\nline\xff\"\n1,a\n",                  # on a quoted name's second line
    b"caf\xe9\n1\n",                                # one column: not a delimiter problem
])
def test_a_header_that_is_not_utf8_is_an_error(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(FileLayoutError, match="not UTF-8 text: its header row") as caught:
        infer_schema(write(tmp_path, content))
    assert "save the file as UTF-8" in str(caught.value)
    assert not caught.value.retryable


def test_all_string_header_needs_a_typed_column_outside_the_custom_classifier(
        tmp_path: Path) -> None:
    comma = infer_schema(write(tmp_path, "name,city\nann,paris\n", "comma.csv"))
    assert comma.names == ("name", "city")  # contains_header PRESENT: taken as written
    with pytest.raises(CatalogError, match="every column is STRING"):
        infer_schema(write(tmp_path, "name|city\nann|paris\n", "pipe.csv"))
    typed = infer_schema(write(tmp_path, "name|age\nann|31\n", "typed.csv"))
    assert typed.names == ("name", "age")
    # Glue's types tell header from data: a zip code column does, though it loads as text.
    zips = infer_schema(write(tmp_path, "name|zip\nann|02869\n", "zips.csv"))
    assert [(c.name, c.type) for c in zips.columns] == [("name", "string"), ("zip", "string")]


def test_only_sample_rows_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path, "key,n\n" + "".join(f"k,{i}\n" for i in range(5)) + "k,oops\n")
    assert infer_schema(path, sample_rows=5).columns[1].type == "bigint"
    assert infer_schema(path, sample_rows=6).columns[1].type == "string"


class EndlessCsv(io.RawIOBase):
    """A CSV stream that never ends; counts the bytes handed out."""

    def __init__(self) -> None:
        self.handed_out = 0
        self._pending = b"id,name\n"
        self._row = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self._pending) < len(buffer):
            self._pending += f"{self._row},name{self._row}\n".encode()
            self._row += 1
        size = len(buffer)
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        self.handed_out += size
        return size


def test_reads_a_bounded_prefix_of_an_endless_stream() -> None:
    raw = EndlessCsv()
    schema = infer_schema(io.BufferedReader(raw), sample_rows=50)
    assert schema.names == ("id", "name")
    assert [c.type for c in schema.columns] == ["bigint", "string"]
    assert raw.handed_out < 256 * 1024


def test_callers_stream_is_left_open() -> None:
    stream = io.BytesIO(b"id,name\n1,ann\n")
    infer_schema(stream)
    assert not stream.closed
