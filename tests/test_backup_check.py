"""The second bucket proven before a stream: `check` puts a probe object there, fetches it at
BACKUP_PUBLIC_URL and deletes it, each failure one line naming the BACKUP_ setting; and `run` does not
start when the second bucket refuses its settings (moto, a bucket each)."""

from __future__ import annotations

import dataclasses

from pathlib import Path

import pytest

from broadcaster.preflight import run_checks
from broadcaster.settings import Settings, load_settings
from tests.support.public_bucket import bucket_block, keys_in, moto_bucket, moto_s3
from tests.support.service_process import ServiceProcess, moto_env

pytestmark = pytest.mark.integration

SECOND = "second-check"
FIRST = "first-check"


def settings(moto_url: str, tmp_path: Path, name: str = SECOND) -> Settings:
    """The first bucket on moto too (a bucket of its own, public and with CORS, as R2 is set up)."""
    moto_bucket(moto_url, FIRST)
    return load_settings(flags={
        "HLS_DIR": str(tmp_path), "S3_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "first-key",
        "AWS_SECRET_ACCESS_KEY": "first-secret", "AWS_BUCKET_NAME": FIRST,
        "R2_PUBLIC_URL": f"{moto_url}/{FIRST}", "STATE_DIR": str(tmp_path / "state"), "UPLOAD_TIMEOUT": "5",
        "TRUST_CF_CONNECTING_IP": "true", "PORT": "0", "PATHWAYS": "bucket,backup",
        **bucket_block("backup", moto_url, name, "second-key", "second-secret-never-shown")}, environ={})


async def check(s: Settings, about: str = "backup pathway") -> tuple[int, list[str]]:
    """The checks failed in all, and the lines that say `about` (the second bucket's). (moto answers the
    first bucket's CORS preflight 403, whatever its rules: that check fails here, and counts as one.)"""
    lines: list[str] = []
    await run_checks(s, print_line=lines.append)
    return sum(line.startswith("FAIL") for line in lines), [line for line in lines if about in line]


async def test_check_proves_the_second_bucket_and_leaves_nothing_there(moto_url: str, tmp_path: Path) -> None:
    moto_bucket(moto_url, SECOND)
    _, lines = await check(settings(moto_url, tmp_path))
    assert [line.split(" ", 1)[0] for line in lines] == ["ok", "ok", "ok"], lines
    assert "readable by a viewer page (CORS)" in lines[1] and "delete probe object" in lines[2]
    assert keys_in(moto_s3(moto_url), SECOND) == set()


async def test_a_second_bucket_viewers_cannot_read_fails_naming_its_public_url(
        moto_url: str, tmp_path: Path) -> None:
    moto_bucket(moto_url, "second-private", public=False)
    failed, lines = await check(settings(moto_url, tmp_path, "second-private"))
    assert failed == 2  # the first bucket's CORS preflight on moto, and this
    assert [line.split(" ", 1)[0] for line in lines] == ["ok", "FAIL", "ok"], lines
    assert "-> HTTP 403: BACKUP_PUBLIC_URL must serve the bucket's objects to anyone" in lines[1]
    assert keys_in(moto_s3(moto_url), "second-private") == set()  # deleted all the same


async def test_a_second_bucket_that_is_not_there_names_its_setting(moto_url: str, tmp_path: Path) -> None:
    failed, lines = await check(settings(moto_url, tmp_path, "second-missing"))
    assert failed == 2
    assert lines[0].startswith("FAIL the backup pathway's bucket 'second-missing'") and lines[0].endswith(
        "-> NoSuchBucket: check BACKUP_BUCKET_NAME"), lines
    assert all("second-secret-never-shown" not in line for line in lines)


async def test_the_service_does_not_start_when_the_second_bucket_refuses_its_settings(
        moto_url: str, tmp_path: Path) -> None:
    env = moto_env(moto_url, tmp_path, PATHWAYS="bucket,backup", **bucket_block("backup", moto_url, "no-such-second"))
    lines = await ServiceProcess(env, tmp_path).refused(timeout=60)
    assert lines == ["hls-broadcaster: error: the backup pathway's bucket 'no-such-second' refused us (NoSuchBucket): "
                     "check BACKUP_BUCKET_NAME"], lines


async def test_check_says_what_the_vms_pathway_through_the_tunnel_means(moto_url: str, tmp_path: Path) -> None:
    """Cloudflare's terms (docs/steering.md#cloudflares-terms): `check` says each time that the VM's
    segments go through the tunnel; a warning, not a failure; not said on a hostname of its own."""
    moto_bucket(moto_url, SECOND)
    s = dataclasses.replace(settings(moto_url, tmp_path), pathways=("bucket", "backup", "vm"))
    said = (await check(s, "VM_PATHWAY_URL"))[1]
    assert len(said) == 1 and said[0].startswith("warn ") and "Cloudflare's self-serve terms" in said[0]
    own = dataclasses.replace(s, vm_pathway_url="https://vm.example.com")
    assert (await check(own, "VM_PATHWAY_URL"))[1] == []
