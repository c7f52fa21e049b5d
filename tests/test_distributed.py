"""The watchdog's bookkeeping (which peers count as lost after each reading of the coordination service's counters),
the port probe before the service starts and the connection count that ends it (the processes themselves:
tests/reliability/test_pod_faults.py)."""

import socket
import time

from mtl_jax.distributed import clients_connected, port_busy, silent_peers


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


def test_a_port_served_with_so_reuseport_counts_as_busy():
  """gRPC binds the coordination service with SO_REUSEPORT, so a second service on its port would not fail: the
  probe that makes a rerun wait for the previous run's service must see the first one."""
  with socket.socket(socket.AF_INET6) as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    server.bind(("::", 0))
    server.listen()
    port = server.getsockname()[1]
    assert port_busy(f"[::]:{port}") and port_busy(f"127.0.0.1:{port}")
  assert not port_busy(f"[::]:{port}")


def test_the_connections_a_service_holds_are_counted_until_the_client_closes():
  """The coordination service's process stops once no client is connected (a client process that ends, killed or
  not, closes its connection): counted among this process's own sockets, on the service's port only."""
  with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    assert clients_connected(port) == 0
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    assert clients_connected(port) == 1  # the accepted end; the client's end has another local port
    client.close()
    time.sleep(0.1)
    assert clients_connected(port) == 0  # the accepted end is in CLOSE_WAIT
    accepted.close()
