"""check_key_arguments: --partition_key/--sort_key (NAME or NAME:TYPE) against the table's keys;
key_attribute_from_argument: the key of a table to create."""

from __future__ import annotations

import pytest
from dynamo_ingest.core.errors import ArgumentError, TargetTableError
from dynamo_ingest.core.keys import (
    KeyAttribute,
    KeySchema,
    check_key_arguments,
    key_attribute_from_argument,
)

ID_S = KeySchema(KeyAttribute("id", "S"))
PK_TS = KeySchema(KeyAttribute("pk", "S"), KeyAttribute("ts", "N"))


@pytest.mark.parametrize(("schema", "partition_key", "sort_key"), [
    (ID_S, "id", None),
    (ID_S, "id:S", None),
    (ID_S, "id:s", None),  # the type's letter case does not matter, as for `init`
    (ID_S, None, None),
    (PK_TS, "pk", "ts"),
    (PK_TS, "pk:S", "ts:N"),
    (KeySchema(KeyAttribute("a:b", "S")), "a:b", None),  # a name holding ':' is a name
])
def test_matching_key_arguments_pass(schema: KeySchema, partition_key: str | None,
                                     sort_key: str | None) -> None:
    check_key_arguments(schema, partition_key, sort_key, "t")  # no error is the assertion


def test_a_partition_key_of_another_type_names_both_types() -> None:
    with pytest.raises(TargetTableError) as caught:
        check_key_arguments(ID_S, "id:N", None, "t")
    assert str(caught.value) == ("--partition_key is 'id:N' but table 't' has partition key 'id' "
                                 "of type S, not N: pass --partition_key id (or id:S)")


def test_a_sort_key_of_another_type_names_both_types() -> None:
    with pytest.raises(TargetTableError) as caught:
        check_key_arguments(PK_TS, "pk", "ts:S", "t")
    assert str(caught.value) == ("--sort_key is 'ts:S' but table 't' has sort key 'ts' of type "
                                 "N, not S: pass --sort_key ts (or ts:N)")


def test_another_name_says_the_tables_name() -> None:
    with pytest.raises(TargetTableError) as caught:
        check_key_arguments(ID_S, "Id:S", None, "t")
    assert str(caught.value) == ("--partition_key is 'Id:S' but table 't' has partition key "
                                 "'id': pass --partition_key id")
    with pytest.raises(TargetTableError, match="has sort key 'ts': pass --sort_key ts"):
        check_key_arguments(PK_TS, "pk", "day", "t")


def test_a_sort_key_for_a_table_without_one_is_refused() -> None:
    with pytest.raises(TargetTableError, match="has no sort key: fix or drop --sort_key"):
        check_key_arguments(ID_S, "id", "ts", "t")


@pytest.mark.parametrize(("value", "attribute"), [
    ("orderId", KeyAttribute("orderId", "S")),  # a bare name is a string key
    ("orderId:N", KeyAttribute("orderId", "N")),
    ("blob:b", KeyAttribute("blob", "B")),
    ("a:b:N", KeyAttribute("a:b", "N")),  # the type follows the last ':'
])
def test_a_key_to_create_is_a_name_and_an_optional_type(value: str,
                                                        attribute: KeyAttribute) -> None:
    assert key_attribute_from_argument("partition_key", value) == attribute


@pytest.mark.parametrize("value", ["orderId:X", ":N", "orderId:"])
def test_a_key_to_create_of_no_key_type_is_refused(value: str) -> None:
    with pytest.raises(ArgumentError, match=rf"--sort_key expects NAME or NAME:S, NAME:N or "
                                            rf"NAME:B, found '{value}'"):
        key_attribute_from_argument("sort_key", value)
