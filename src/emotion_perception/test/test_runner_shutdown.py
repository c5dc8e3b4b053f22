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
