import uuid

import pytest

from rotated_det.data import DatasetCatalog, Metadata, MetadataCatalog


def _name():
    return f"test_catalog_{uuid.uuid4().hex[:8]}"


def test_register_and_get_calls_the_function():
    name = _name()
    calls = []
    DatasetCatalog.register(name, lambda: calls.append(1) or [{"file_name": "a"}])
    try:
        assert DatasetCatalog.get(name) == [{"file_name": "a"}]
        assert DatasetCatalog.get(name) == [{"file_name": "a"}]
        assert len(calls) == 2  # not cached: each get() calls the function
        assert name in DatasetCatalog.list()
    finally:
        DatasetCatalog.remove(name)
    assert name not in DatasetCatalog.list()


def test_register_twice_is_an_error():
    name = _name()
    DatasetCatalog.register(name, lambda: [])
    try:
        with pytest.raises(AssertionError, match="already registered"):
            DatasetCatalog.register(name, lambda: [])
    finally:
        DatasetCatalog.remove(name)


def test_register_needs_callable():
    with pytest.raises(TypeError, match="callable"):
        DatasetCatalog.register(_name(), [1, 2])


def test_unknown_name_lists_registered_ones():
    with pytest.raises(KeyError) as e:
        DatasetCatalog.get("no_such_dataset_xyz")
    msg = str(e.value)
    assert "no_such_dataset_xyz" in msg and "dota_v1_trainval" in msg and "synthetic_train" in msg


def test_metadata_catalog_creates_and_keeps_values():
    name = _name()
    md = MetadataCatalog.get(name)
    assert isinstance(md, Metadata) and md.name == name
    md.thing_classes = ["a", "b"]
    md.set(evaluator_type="dota", thing_colors=[(1, 2, 3), (4, 5, 6)])
    assert MetadataCatalog.get(name).thing_classes == ["a", "b"]
    assert MetadataCatalog.get(name).evaluator_type == "dota"
    assert md.get("missing_key", 7) == 7
    md.thing_classes = ["a", "b"]  # same value again: fine
    with pytest.raises(AssertionError, match="cannot be set to a different value"):
        md.thing_classes = ["c"]
    with pytest.raises(AttributeError, match="thing_classes"):
        _ = md.no_such_attribute  # the message lists the available keys
    assert md.as_dict()["evaluator_type"] == "dota"
    MetadataCatalog.remove(name)
    assert name not in MetadataCatalog.list()
