"""docs/deployment.md shows the HAProxy configuration the cluster tests run, not a copy that
could drift from it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from voicebot.telephony.access_log import parse_proxies
from voicebot.telephony.testing.cluster import haproxy_binary, haproxy_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"


def test_the_documented_haproxy_config_is_the_tested_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- haproxy-config -->\n```haproxy\n(.*?)```", text, re.S)
    assert block is not None, "docs/deployment.md lacks the haproxy-config block"
    documented = block.group(1)
    bind = re.search(r"^    bind (.+)$", documented, re.M)
    servers = re.findall(r"^    server (\S+) (\S+) agent-port (\d+)$", documented, re.M)
    media = dict(
        re.findall(r"^    server (\S+) (\S+) track voicebot/\1 agent-port", documented, re.M)
    )
    assert bind is not None and servers
    assert set(media) == {name for name, *_ in servers}, "each instance's media port is routed"
    triples = [(name, address, int(agent)) for name, address, agent in servers]
    assert documented == haproxy_config(bind.group(1), triples, media=media)


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


def test_the_documented_haproxy_config_is_accepted_by_haproxy(tmp_path: Path) -> None:
    """docs/deployment.md's configuration, media-port routing (issue #20) included, is accepted
    by a real HAProxy (without the TLS certificate, which only the real host has)."""
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- haproxy-config -->\n```haproxy\n(.*?)```", text, re.S)
    assert block is not None
    config = re.sub(r"^    bind .*$", "    bind 127.0.0.1:8443", block.group(1), flags=re.M)
    assert "    use_backend voicebot_media if { path_beg /twilio/media }\n" in config
    (tmp_path / "haproxy.cfg").write_text(config)
    checked = subprocess.run(
        [binary, "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
