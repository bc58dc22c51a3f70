"""The incremental tree update (`DataCodec.update`): what it returns is what a full
encode returns, it never changes the tree it is given, it shares nothing mutable with
the live value, and what it cannot see (a bool for an equal number) is detected."""

from __future__ import annotations

import copy
import decimal
import enum
import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cano_dsl import Resources, RunDataError, StateFailure, Workflow, task
from cano_dsl.workflow._data import DataCodec, apply_ops, diff

leaves = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=2), inner, max_size=4)
    ),
    max_leaves=20,
)


def edit(tree: Any, data: st.DataObject, depth: int = 0) -> Any:
    """A copy of ``tree`` with random subtrees replaced, added or deleted."""
    choice = data.draw(st.integers(0, 4))
    if choice == 0 or depth > 4:
        return data.draw(trees)
    if isinstance(tree, dict):
        out = {
            k: edit(v, data, depth + 1) if data.draw(st.booleans()) else v for k, v in tree.items()
        }
        if out and data.draw(st.booleans()):
            del out[data.draw(st.sampled_from(sorted(out)))]
        if data.draw(st.booleans()):
            out[data.draw(st.text(max_size=2))] = data.draw(trees)
        return out
    if isinstance(tree, list):
        out_list = [edit(v, data, depth + 1) if data.draw(st.booleans()) else v for v in tree]
        if data.draw(st.booleans()):
            out_list.append(data.draw(trees))
        elif out_list and data.draw(st.booleans()):
            out_list.pop()
        return out_list
    return tree


def no_bool_swaps(old: Any, new: Any) -> bool:
    """Whether ``new`` differs from ``old`` only where ``==`` sees it (no bool put where
    an equal number was, or back): the case the per-state walk is exact for."""
    if type(old) is not type(new):
        return old != new or not (isinstance(old, (bool, int)) and isinstance(new, (bool, int)))
    if isinstance(old, dict):
        return all(no_bool_swaps(old[k], v) for k, v in new.items() if k in old)
    if isinstance(old, list):
        return all(no_bool_swaps(x, y) for x, y in zip(old, new, strict=False))
    return True


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_update_equals_a_full_encode_and_leaves_the_old_tree_alone(data: st.DataObject) -> None:
    codec = DataCodec(dict)
    old = {"root": data.draw(trees)}
    new_value = {"root": edit(copy.deepcopy(old["root"]), data)}
    live = copy.deepcopy(new_value)
    before = json.dumps(old)

    got = codec.update(old, live, "S")

    assert json.dumps(old) == before  # the old tree is never changed in place
    assert got == new_value
    if no_bool_swaps(old, new_value):
        assert json.dumps(got) == json.dumps(new_value)
    if json.dumps(old) == json.dumps(new_value):
        assert got is old  # unchanged: the very same tree, nothing rebuilt
    if got is old:
        assert old == new_value
    # the patch between them turns a copy of the old tree into the new one
    assert apply_ops(copy.deepcopy(old), diff(old, got)) == got
    # nothing mutable is shared with the live value: wrecking it leaves the tree as is
    snapshot = json.dumps(got)
    wreck(live)
    assert json.dumps(got) == snapshot


def wreck(value: Any) -> None:
    if isinstance(value, dict):
        for v in value.values():
            wreck(v)
        value.clear()
        value["wrecked"] = True
    elif isinstance(value, list):
        for v in value:
            wreck(v)
        value.clear()
        value.append("wrecked")


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.define
class Item:
    sku: str
    qty: int = 1
    color: Color = Color.RED
    tags: tuple[str, ...] = ()


@attrs.define
class Cart:
    items: list[Item] = attrs.Factory(list)
    meta: dict[str, Any] = attrs.Factory(dict)
    total: float = 0.0


def test_update_of_typed_values_matches_to_tree() -> None:
    codec = DataCodec(Cart)
    cart = Cart([Item("a"), Item("b", 2, Color.BLUE, ("x",))], {"k": [1, 2]}, 3.5)
    old = codec.to_tree(cart, "S")
    assert codec.update(old, cart, "S") is old  # nothing changed: the same tree

    cart.items[1].tags = ("x", "y")
    cart.items.append(Item("c"))
    cart.meta["level"] = Level.HIGH  # an IntEnum encodes as its int, as json does
    cart.meta["k"].append(3)
    got = codec.update(old, cart, "S")
    assert got == codec.to_tree(cart, "S")
    assert got["items"][0] is old["items"][0]  # the unchanged item is shared, not copied
    assert got["meta"]["level"] == 2


def test_update_names_the_field_that_does_not_encode() -> None:
    codec = DataCodec(Cart)
    cart = Cart([Item("a")])
    old = codec.to_tree(cart, "S")
    cart.items[0].qty = {1}  # type: ignore[assignment]
    with pytest.raises(RunDataError, match=r"PRICE: field `items\[0\]\.qty`"):
        codec.update(old, cart, "PRICE")
    cyclic: dict[str, Any] = {"a": {}}
    cyclic["a"]["self"] = cyclic
    with pytest.raises(RunDataError, match="a reference cycle"):
        DataCodec(dict).update({"a": {}}, cyclic, "S")


class M(enum.Enum):
    ONE = 1
    TWO = 2
    DONE = 3


def swap_wf(new_flag: Any) -> Workflow[M]:
    @task
    async def one(res: Resources, data: dict[str, Any]) -> M:
        data["n"] = 1
        return M.TWO

    @task
    async def two(res: Resources, data: dict[str, Any]) -> M:
        data["flag"] = new_flag  # equal to the 1 it replaces
        return M.DONE

    return (
        Workflow(Resources())
        .with_run_data(dict)
        .register(M.ONE, one)
        .register(M.TWO, two)
        .add_exit_state(M.DONE)
    )


@pytest.mark.anyio
async def test_a_bool_for_an_equal_number_is_detected_not_lost() -> None:
    # `True == 1`: the per-state walk cannot see this change, so the exit check must
    wf = swap_wf(True)
    with pytest.raises(StateFailure) as info:
        await wf.run(M.ONE, data={"flag": 1})
    assert isinstance(info.value.error, RunDataError)
    assert "`flag`" in str(info.value.error)


@pytest.mark.anyio
async def test_a_non_json_value_equal_to_what_it_replaces_is_still_refused() -> None:
    wf = swap_wf(decimal.Decimal(1))
    with pytest.raises(StateFailure) as info:
        await wf.run(M.ONE, data={"flag": 1})
    assert isinstance(info.value.error, RunDataError)
    assert "`flag`" in str(info.value.error) and "Decimal" in str(info.value.error)


@pytest.mark.anyio
async def test_a_float_for_an_equal_int_is_not_an_error() -> None:
    result = await swap_wf(1.0).run(M.ONE, data={"flag": 1})
    assert result.data == {"flag": 1.0, "n": 1}
