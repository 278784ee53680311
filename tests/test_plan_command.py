"""`cni-migrate plan`: the wave table, CIDR/tunnel, warnings, shared options and their errors."""
import argparse

import pytest

from generator.cli import main
from generator.commands.plan import add_plan_options, format_plan, options_from_args
from generator.errors import UserError
from generator.plan.model import DEFAULT_IMAGES, Options
from generator.plan.planner import make_plan
from test_plan_fixture import make_inventory


def parse(*argv):
    p = argparse.ArgumentParser()
    add_plan_options(p)
    return options_from_args(p.parse_args(list(argv)))


def test_options_defaults_and_overrides():
    o = parse()
    assert o.engine == "argocd" and o.cilium_version == "1.19" and o.batch_size == "25%"
    assert o.images == DEFAULT_IMAGES
    o = parse("--engine", "flux", "--cilium-version", "1.16", "--cilium-pod-cidr", "10.50.0.1/16",
              "--batch-size", "3", "--image", "runner=reg.local/python@sha256:abc",
              "--approximate", "--repo-url", "https://git.local/x.git", "--no-canary")
    assert (o.engine, o.cilium_version, o.cilium_pod_cidr, o.batch_size) == \
        ("flux", "1.16", "10.50.0.0/16", "3")
    assert o.images["runner"] == "reg.local/python@sha256:abc"
    assert o.images["probe"] == DEFAULT_IMAGES["probe"]
    assert o.approximate and o.repo_url == "https://git.local/x.git" and not o.canary


@pytest.mark.parametrize("argv,field", [
    (["--cilium-version", "1.15"], "--cilium-version"),
    (["--cilium-version", "1.20"], "--cilium-version"),
    (["--image", "runner"], "--image"),
    (["--image", "nope=x"], "--image"),
    (["--cilium-pod-cidr", "10.0.0.0/33"], "--cilium-pod-cidr"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_bad_options_are_user_errors(argv, field):
    with pytest.raises(UserError) as e:
        parse(*argv)
    assert e.value.field == field


def test_format_plan_lists_every_wave_cidr_tunnel_and_warnings():
    plan = make_plan(make_inventory(), Options())
    text = format_plan(plan)
    assert plan.cilium_pod_cidr in text and f"UDP {plan.tunnel.port}" in text
    for w in plan.waves:
        assert f"{w.number:02d}    {w.key}" in text
    for n in make_inventory().nodes:
        assert n.name in text
    assert "(approval)" in text and "warnings:" in text
    assert "irreversible" in text


def test_cli_plan_on_example_snapshot(root, capsys):
    example = root / "examples" / "kind-canal"
    assert main(["plan", "--from", str(example), "--engine", "flux"]) == 0
    out = capsys.readouterr().out
    assert "canal -> Cilium 1.19 (flux)" in out and "old-cni-removal" in out
    assert "enforcement gap" in out
    assert main(["plan", "--from", str(example), "--cilium-version", "1.15"]) == 2
    err = capsys.readouterr().err
    assert "--cilium-version" in err and len(err.strip().splitlines()) == 1
