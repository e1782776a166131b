"""Batches of hospitals per run: consecutive partitions of one host, bounded in size."""

from __future__ import annotations

from price_pipeline.lib.ops.batches import Batch, order_for_adding, plan_batches


def test_new_partitions_are_added_grouped_by_host():
    hosts = {"a1": "h2", "a2": "h1", "a3": "h2", "a4": "h1"}
    assert order_for_adding(hosts, hosts) == ["a2", "a4", "a1", "a3"]


def test_batches_are_consecutive_same_host_and_bounded():
    order = ["k1", "k2", "k3", "k4", "k5", "k6", "k7"]
    hosts = {"k1": "a", "k2": "a", "k3": "a", "k4": "b", "k5": "b", "k6": "a", "k7": "a"}
    batches = plan_batches(order, order, hosts, max_size=2)
    assert batches == [
        Batch(("k1", "k2"), "a"), Batch(("k3",), "a"), Batch(("k4", "k5"), "b"), Batch(("k6", "k7"), "a"),
    ]


def test_a_gap_in_the_wanted_keys_cuts_a_batch_and_every_wanted_key_is_placed_once():
    order = ["k1", "k2", "k3", "k4"]
    hosts = dict.fromkeys(["k1", "k2", "k3", "k4", "orphan"], "a")
    batches = plan_batches(order, ["k1", "k2", "k4", "orphan"], hosts, max_size=25)
    assert batches == [Batch(("k1", "k2"), "a"), Batch(("k4",), "a"), Batch(("orphan",), "a")]
    placed = [k for b in batches for k in b.keys]
    assert sorted(placed) == sorted(set(placed)) == ["k1", "k2", "k4", "orphan"]


def test_batch_size_one_means_one_hospital_per_run():
    order = ["k1", "k2", "k3"]
    assert [b.keys for b in plan_batches(order, order, {}, max_size=1)] == [("k1",), ("k2",), ("k3",)]


def test_short_gaps_of_fill_keys_are_taken_along_and_long_ones_cut():
    order = [f"k{i}" for i in range(1, 13)]
    hosts = dict.fromkeys(order, "a")
    wanted = ["k1", "k3", "k4", "k8", "k12"]
    fill = set(order) - set(wanted) - {"k10"}  # k10 cannot be taken along (e.g. it has no prices)
    batches = plan_batches(order, wanted, hosts, max_size=25, fill=fill, max_gap=3)
    # k2 (a gap of 1) and k5-k7 (3) are taken along; k9-k11 hold k10, so k12 starts its own batch
    assert batches == [Batch(("k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"), "a"), Batch(("k12",), "a")]
    assert [b.keys for b in plan_batches(order, wanted, hosts, max_size=25, fill=fill, max_gap=2)] == [
        ("k1", "k2", "k3", "k4"), ("k8",), ("k12",)]
    # without fill keys nothing changes
    assert plan_batches(order, wanted, hosts, max_size=25, max_gap=3) == plan_batches(order, wanted, hosts, max_size=25)


def test_fill_keys_count_towards_the_size_and_never_cross_a_host():
    order = ["k1", "k2", "k3", "k4", "k5"]
    hosts = {"k1": "a", "k2": "a", "k3": "a", "k4": "b", "k5": "b"}
    fill = {"k2", "k4"}
    assert [b.keys for b in plan_batches(order, ["k1", "k3"], hosts, max_size=2, fill=fill, max_gap=5)] == [
        ("k1",), ("k3",)]
    assert [b.keys for b in plan_batches(order, ["k1", "k3"], hosts, max_size=3, fill=fill, max_gap=5)] == [
        ("k1", "k2", "k3")]
    # k4 is a fill key of another host: k3 and k5 stay apart
    assert [b.keys for b in plan_batches(order, ["k3", "k5"], hosts, max_size=9, fill=fill, max_gap=5)] == [
        ("k3",), ("k5",)]
