"""The versioned config store: versions, their source documents, pruning."""
from __future__ import annotations

import json
import os

from dakia_prefork.config.store import ConfigStore


def test_a_version_keeps_the_document_it_came_from(tmp_path):
    store = ConfigStore(str(tmp_path))
    normalised = {"workers": 2, "state_dir": "/abs/state"}
    source = {"workers": 2, "state_dir": "state", "password": "${SECRET}"}
    assert store.write(normalised, keep=5, source=source) == 1
    assert store.read(1) == normalised
    assert store.read_source(1) == source
    assert os.stat(store.source_path(1)).st_mode & 0o777 == 0o600


def test_without_a_source_the_normalised_config_stands_in(tmp_path):
    store = ConfigStore(str(tmp_path))
    store.write({"workers": 1}, keep=5)
    assert store.read_source(1) == {"workers": 1}


def test_pruning_and_discarding_remove_both_files(tmp_path):
    store = ConfigStore(str(tmp_path))
    for n in range(4):
        store.write({"n": n}, keep=2, source={"s": n})
    assert store.versions() == [3, 4]
    assert sorted(os.listdir(store.directory)) == ["v3.json", "v3.source.json",
                                                   "v4.json", "v4.source.json"]
    store.discard(4)
    assert store.versions() == [3] and not os.path.exists(store.source_path(4))
    assert json.load(open(store.source_path(3))) == {"s": 2}


def test_a_source_file_is_not_taken_for_a_version(tmp_path):
    store = ConfigStore(str(tmp_path))
    store.write({"n": 1}, keep=5, source={"s": 1})
    assert store.versions() == [1] and store.latest() == 1
