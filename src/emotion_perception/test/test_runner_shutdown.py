"""shutdown_nodes reports a node that fails to close instead of swallowing the error."""

import pytest


class FakeNode:
    """Records the shutdown steps it got; ``fail`` names the step that raises."""

    def __init__(self, name: str, fail: str = "") -> None:
        self.name, self.fail, self.steps = name, fail, []

    def get_name(self) -> str:
        return self.name

    def _step(self, step: str) -> None:
        self.steps.append(step)
        if step == self.fail:
            raise RuntimeError(f"{self.name} broke in {step}")

    def _close_all(self) -> None:
        self._step("_close_all")

    def teardown(self) -> None:
        self._step("teardown")

    def destroy_node(self) -> None:
        self._step("destroy_node")


def test_a_failing_node_is_logged_and_the_others_still_close(rclpy_session, capfd):
    from emotion_perception.nodes.runner import shutdown_nodes

    bad, good = FakeNode("bad_node", fail="teardown"), FakeNode("good_node")
    shutdown_nodes([bad, good], shutdown_rclpy=False)  # must not raise
    err = capfd.readouterr().err
    assert "closing node bad_node: teardown() raised RuntimeError: bad_node broke in teardown" \
        in err
    assert "good_node" not in err
    assert bad.steps == ["_close_all", "teardown"]  # no destroy under unclosed workers
    assert good.steps == ["_close_all", "teardown", "destroy_node"]


def test_clean_shutdown_logs_nothing(rclpy_session, capfd):
    from emotion_perception.nodes.runner import shutdown_nodes

    nodes = [FakeNode("a"), FakeNode("b")]
    shutdown_nodes(nodes, shutdown_rclpy=False)
    assert "closing node" not in capfd.readouterr().err
    assert all(n.steps == ["_close_all", "teardown", "destroy_node"] for n in nodes)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))


@pytest.mark.ros
def test_background_spin_gives_every_node_its_own_executor_thread(rclpy_session):
    """Each node spins on its own executor thread; callbacks run there; stop ends them all."""
    import threading

    import rclpy
    from std_msgs.msg import String

    from conftest import wait_for
    from emotion_perception.nodes.runner import BackgroundSpin

    heard: dict[str, set] = {"a": set(), "b": set()}
    nodes = []
    for key in heard:
        node = rclpy.create_node(f"spin_{key}", namespace="/spin_test")
        node.create_subscription(String, "chatter", lambda m, k=key: heard[k].add(
            threading.current_thread().name), 10)
        nodes.append(node)
    talker = rclpy.create_node("spin_talker", namespace="/spin_test")
    pub = talker.create_publisher(String, "chatter", 10)
    spin = BackgroundSpin(nodes[:1], name="t")
    spin.add(nodes[1])
    try:
        assert len(spin.executors) == 2 and spin.alive()
        assert wait_for(lambda: pub.get_subscription_count() == 2, 30)
        assert wait_for(lambda: (pub.publish(String(data="x")) or True)
                        and all(heard.values()), 30)
        assert heard == {"a": {"t:spin_a"}, "b": {"t:spin_b"}}
    finally:
        spin.stop(shutdown_rclpy=False)
        talker.destroy_node()
    assert not any(t.is_alive() for t in spin.threads)
