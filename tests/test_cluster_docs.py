"""docs/deployment.md shows the HAProxy configuration the cluster tests run, not a copy that
could drift from it."""

from __future__ import annotations

import re
from pathlib import Path

from voicebot.telephony.access_log import parse_proxies
from voicebot.telephony.testing.cluster import haproxy_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"


def test_the_documented_haproxy_config_is_the_tested_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- haproxy-config -->\n```haproxy\n(.*?)```", text, re.S)
    assert block is not None, "docs/deployment.md lacks the haproxy-config block"
    documented = block.group(1)
    bind = re.search(r"^    bind (.+)$", documented, re.M)
    servers = re.findall(r"^    server (\S+) (\S+) agent-port (\d+)$", documented, re.M)
    assert bind is not None and servers
    triples = [(name, address, int(agent)) for name, address, agent in servers]
    assert documented == haproxy_config(bind.group(1), triples)


def test_the_systemd_unit_drains_within_its_stop_timeout() -> None:
    text = DOC.read_text(encoding="utf-8")
    drain = re.search(r"--drain-timeout (\d+)", text)
    stop = re.search(r"^TimeoutStopSec=(\d+)$", text, re.M)
    assert drain is not None and stop is not None
    assert int(stop.group(1)) > int(drain.group(1))  # systemd must not SIGKILL a drain


def test_the_systemd_unit_trusts_haproxy_for_forwarded_addresses() -> None:
    """Without it the dashboard sees every browser as HAProxy (one shared back-off)."""
    text = DOC.read_text(encoding="utf-8")
    unit = re.search(r"^ExecStart=(.*?)$\n^[A-Z]", text, re.M | re.S)
    assert unit is not None
    proxy = re.search(r"--trusted-proxy (\S+)", unit.group(1))
    assert proxy is not None
    assert parse_proxies([proxy.group(1)])
