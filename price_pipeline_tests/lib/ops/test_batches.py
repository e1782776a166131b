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
