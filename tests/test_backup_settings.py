"""The second bucket's settings: all of them with 'backup' in PATHWAYS, none without,
each error line naming its setting, the secret never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.settings import SettingsError, load_settings, lookalike_keys
from tests.support.settings_env import env
from tests.support.tunnel import OWNCAST_HOST, SERVICE, route

SECRET = "backup-s3cr3t-never-shown"
BACKUP = {
    "BACKUP_S3_ENDPOINT_URL": "https://s3.eu-central-1.amazonaws.com/", "BACKUP_S3_REGION": "eu-central-1",
    "BACKUP_ACCESS_KEY_ID": "AKIABACKUP", "BACKUP_SECRET_ACCESS_KEY": SECRET,
    "BACKUP_BUCKET_NAME": "stream-backup", "BACKUP_PUBLIC_URL": "https://backup.example.net/",
}


def test_backup_pathway_without_its_bucket_names_each_missing_setting(tmp_path: Path) -> None:
    partial = {k: v for k, v in BACKUP.items() if k not in ("BACKUP_BUCKET_NAME", "BACKUP_SECRET_ACCESS_KEY")}
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env(tmp_path, PATHWAYS="bucket,vm,backup", **partial))
    assert len(err.value.problems) == 2, err.value.problems
    assert err.value.problems[0].startswith("BACKUP_SECRET_ACCESS_KEY is not set: PATHWAYS names backup")
    assert err.value.problems[1].startswith("BACKUP_BUCKET_NAME is not set")


def test_a_buckets_settings_without_its_pathway_are_named_as_ignored(tmp_path: Path) -> None:
    """A second bucket's <ID>_* block set without PATHWAYS naming it: each key a stray `check` and `run`
    name (never the secret's value); empty or default ones (as deploy/env.example ships them) say nothing."""
    environ = env(tmp_path, **BACKUP, B2_BUCKET_NAME="", B2_S3_REGION="auto", OTHER_THING="x")
    load_settings(environ=environ)  # ignored, so the rest still loads
    lines = lookalike_keys(environ=environ)
    assert lines == [f"{key} is a setting of the bucket pathway backup, which PATHWAYS (bucket) does not name, so "
                     "it is ignored: add backup to PATHWAYS (e.g. PATHWAYS=bucket,backup) or remove it"
                     for key in BACKUP], lines
    assert SECRET not in str(lines)
    assert lookalike_keys(environ=dict(environ, PATHWAYS="bucket,backup")) == []


def test_a_buckets_block_in_the_env_file_without_its_pathway_stops_the_start(tmp_path: Path) -> None:
    """In the env file, a bucket's block whose pathway PATHWAYS does not name is a bucket the operator meant:
    each key a line and the start stops, as `check` does; with PATHWAYS naming it, it loads."""
    first = env(tmp_path)
    file = tmp_path / "hls-broadcaster.env"
    file.write_text("".join(f"{k}={v}\n" for k, v in {**BACKUP, "B2_S3_REGION": "auto"}.items()))
    with pytest.raises(SettingsError) as err:
        load_settings(environ=first, env_file=file)
    assert err.value.problems == [f"{key} (in {file}) sets the bucket pathway backup, which PATHWAYS (bucket) does "
                                  "not name: add backup to PATHWAYS (e.g. PATHWAYS=bucket,backup) or remove it"
                                  for key in BACKUP], err.value.problems
    assert SECRET not in str(err.value.problems)
    assert load_settings(environ=dict(first, PATHWAYS="bucket,backup"), env_file=file).extra_buckets


def test_backup_bucket_that_is_the_first_one_is_refused(tmp_path: Path) -> None:
    same = dict(BACKUP, BACKUP_S3_ENDPOINT_URL="https://acc.r2.cloudflarestorage.com", BACKUP_BUCKET_NAME="my-bucket")
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env(tmp_path, PATHWAYS="bucket,backup", **same))
    assert err.value.problems[0].startswith("BACKUP_BUCKET_NAME: the backup pathway's bucket is the first one")


@pytest.mark.parametrize(("name", "value", "says"), [
    ("BACKUP_S3_ENDPOINT_URL", "s3.example.com", "expected an http:// or https:// URL"),
    ("BACKUP_BUCKET_NAME", "Bad_Name", "expected 3-63 lowercase letters"),
    ("BACKUP_PUBLIC_URL", "https://user:pw@cdn.example", "without user:password@"),
    ("PATHWAYS", "bucket,backup,backup", "expected 'bucket' alone"),
    ("PATHWAYS", "backup,bucket", "expected 'bucket' alone"),
])
def test_bad_backup_values_name_their_setting(tmp_path: Path, name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env(tmp_path, **{**BACKUP, "PATHWAYS": "bucket,backup", name: value}))
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(f"{name}=") \
        and says in err.value.problems[0], err.value.problems


@pytest.mark.parametrize(("host", "path"), [("live.example.com", "/live/backup/0/playlist.m3u8"),
                                           (OWNCAST_HOST, "/hls/backup/1/stream.m3u8")])
def test_the_tunnel_routes_the_backup_pathways_playlists(host: str, path: str) -> None:
    """Each layout's own (each layout's steering rule passes its paths on its hostname alone)."""
    assert route(path, host=host) == SERVICE


@pytest.mark.parametrize("path", ["/live/backup/0/stream-abc-1.ts", "/live/backup/0/../../metrics",
                                  "/live/backup/x/playlist.m3u8", "/hls/backup/0/playlist.m3u8.bak"])
def test_the_backup_pathways_segments_are_not_routed_to_the_service(path: str) -> None:
    """They are in the second bucket: the service has none to serve."""
    assert route(path, host="live.example.com") != SERVICE


def test_a_third_bucket_is_settings_named_after_its_pathway(tmp_path: Path) -> None:
    """Adding a bucket is a PATHWAYS entry and its six settings, <ID>_*: no code (the second bucket's,
    BACKUP_*, and a third's, B2_*)."""
    third = {"B2_S3_ENDPOINT_URL": "https://s3.eu-central-003.backblazeb2.com", "B2_S3_REGION": "eu-central-003",
             "B2_ACCESS_KEY_ID": "b2key", "B2_SECRET_ACCESS_KEY": "b2-secret-123", "B2_BUCKET_NAME": "third",
             "B2_PUBLIC_URL": "https://f003.backblazeb2.com/file/third"}
    s = load_settings(environ=env(tmp_path, PATHWAYS="bucket,backup,b2,vm", **BACKUP, **third))
    assert s.pathways == ("bucket", "backup", "b2", "vm") and s.steering
    assert [b.pathway for b in s.buckets] == ["bucket", "backup", "b2"]
    backup, b2 = s.extra_buckets
    assert (backup.endpoint_url, backup.public_url) == ("https://s3.eu-central-1.amazonaws.com",
                                                        "https://backup.example.net")  # without their slashes
    assert backup.bucket == "stream-backup" and backup.region == "eu-central-1" and SECRET not in repr(s)
    instead = load_settings(environ=env(tmp_path, PATHWAYS="bucket,backup", **BACKUP))
    assert instead.pathways == ("bucket", "backup")
    assert (b2.endpoint_url, b2.region, b2.bucket, b2.public_url) == (
        "https://s3.eu-central-003.backblazeb2.com", "eu-central-003", "third", "https://f003.backblazeb2.com/file/third")
    assert b2.setting("AWS_BUCKET_NAME") == "B2_BUCKET_NAME" and "b2-secret-123" not in repr(s)
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env(tmp_path, PATHWAYS="bucket,b2", **{k: v for k, v in third.items()
                                                                      if k != "B2_PUBLIC_URL"}))
    assert err.value.problems == ["B2_PUBLIC_URL is not set: PATHWAYS names b2, a bucket, which needs the public "
                                  "base URL viewers fetch its segments from"]
