"""The watchdog's bookkeeping: which peers count as lost after each reading of the coordination service's counters
(the processes themselves are tested in tests/reliability/test_pod_faults.py)."""

from mtl_jax.distributed import silent_peers


def test_a_peer_is_lost_only_after_its_counter_stood_still_for_the_timeout():
  seen = {1: (None, 0.0), 2: (None, 0.0)}
  seen, lost = silent_peers(seen, {1: "1", 2: "1"}, 2.0, timeout=5)
  assert lost == [] and seen == {1: ("1", 2.0), 2: ("1", 2.0)}
  seen, lost = silent_peers(seen, {1: "2", 2: "1"}, 4.0, timeout=5)
  assert lost == [] and seen[2] == ("1", 2.0)  # unchanged counter: the clock keeps running from its last change
  seen, lost = silent_peers(seen, {1: "5", 2: "1"}, 7.5, timeout=5)
  assert lost == [2]


def test_a_peer_that_never_showed_up_is_lost_and_one_that_finished_never_is():
  seen = {1: (None, 0.0), 2: (None, 0.0)}
  seen, lost = silent_peers(seen, {2: "done"}, 10.0, timeout=5)
  assert lost == [1]
  seen, lost = silent_peers(seen, {}, 100.0, timeout=5)  # a value once read stays known when a reading lacks it
  assert lost == [1] and seen[2] == ("done", 10.0)
