"""User-visible behaviour of Highwind's AssetService (and the gateway around it), through generated Python stubs.

Each test makes its own assets, so tests do not depend on one another; bob never creates an asset, so his list
stays empty for the whole session.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

PUBLIC_SERVICES = [
    "highwind.asset.v1.AssetService",
    "highwind.asset.v1.UploadService",
    "highwind.asset.v1.ImageService",
    "highwind.usecase.v1.UseCaseService",
    "highwind.usecase.v1.MarketplaceService",
    "highwind.pipeline.v1.PipelineService",
]


# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------


def expect_error(code: grpc.StatusCode, fn, *args, **kwargs) -> grpc.RpcError:
    """Calls `fn` and returns the RpcError it raises, which must carry `code`."""
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.code() == code, f"expected {code.name}, got {err.code().name}: {err.details()}"
    return err


def bad_request_fields(err: grpc.RpcError) -> dict[str, str]:
    """field -> description of the google.rpc.BadRequest in the error's `grpc-status-details-bin`."""
    status = rpc_status.from_call(err)
    assert status is not None, f"no grpc-status-details-bin on {err.code().name}: {err.details()}"
    assert status.code == err.code().value[0]
    fields: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                fields[v.field] = v.description
    assert fields, f"no BadRequest field violations in details: {status.details}"
    return fields


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_asset(pb, alice):
    """`make_asset(**fields)`: creates an asset as alice (a dataset named uniquely unless told otherwise)."""

    def make(**fields):
        fields.setdefault("kind", pb.asset.ASSET_KIND_DATASET)
        fields.setdefault("display_name", unique("asset"))
        return alice.CreateAsset(pb.asset_svc.CreateAssetRequest(asset=pb.asset.Asset(**fields)))

    return make


def list_all(stub, pb, **request) -> list:
    """Every asset of a listing, following next_page_token."""
    out, token = [], ""
    for _ in range(1000):
        page = stub.ListAssets(pb.asset_svc.ListAssetsRequest(page_token=token, **request))
        out.extend(page.assets)
        token = page.next_page_token
        if not token:
            return out
    raise AssertionError("listing never ended")


# --------------------------------------------------------------------------------------------------------------
# Create / Get
# --------------------------------------------------------------------------------------------------------------


def test_create_returns_the_stored_asset_and_get_reads_it_back(pb, alice):
    team = unique("team")
    created = alice.CreateAsset(
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(
                kind=pb.asset.ASSET_KIND_DATASET,
                display_name="California housing",
                description="1990 census blocks",
                labels={"team": team, "stage": "raw"},
            )
        )
    )
    uuid.UUID(created.uid)  # a real UUID
    assert created.name == f"assets/{created.uid}"
    assert created.kind == pb.asset.ASSET_KIND_DATASET
    assert created.display_name == "California housing"
    assert created.description == "1990 census blocks"
    assert dict(created.labels) == {"team": team, "stage": "raw"}
    assert created.owner == "users/alice"
    assert created.HasField("create_time") and created.create_time.seconds > 0
    assert created.HasField("update_time")
    assert created.update_time.ToDatetime() >= created.create_time.ToDatetime()
    assert created.etag
    assert not created.archived
    assert not created.HasField("archive_time")

    got = alice.GetAsset(pb.asset_svc.GetAssetRequest(name=created.name))
    assert got == created


def test_create_model_keeps_model_details(pb, alice):
    created = alice.CreateAsset(
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(
                kind=pb.asset.ASSET_KIND_MODEL,
                display_name=unique("model"),
                model=pb.asset.ModelDetails(
                    framework="scikit-learn 1.5", format=pb.asset.MODEL_FORMAT_JOBLIB, model_card="# Card"
                ),
            )
        )
    )
    assert created.kind == pb.asset.ASSET_KIND_MODEL
    assert created.WhichOneof("details") == "model"
    assert created.model.framework == "scikit-learn 1.5"
    assert created.model.format == pb.asset.MODEL_FORMAT_JOBLIB
    assert created.model.model_card == "# Card"
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=created.name)) == created


def test_output_only_fields_sent_on_create_are_not_taken(pb, alice):
    created = alice.CreateAsset(
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(
                name="assets/00000000-0000-7000-8000-000000000000",
                kind=pb.asset.ASSET_KIND_DATASET,
                display_name=unique("out"),
                owner="users/bob",
                archived=True,
            )
        )
    )
    assert created.owner == "users/alice"
    assert created.name != "assets/00000000-0000-7000-8000-000000000000"
    assert not created.archived


def test_create_with_the_same_request_id_returns_the_first_asset(pb, alice):
    request_id = str(uuid.uuid4())
    req = pb.asset_svc.CreateAssetRequest(
        asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name=unique("idem")), request_id=request_id
    )
    first = alice.CreateAsset(req)
    again = alice.CreateAsset(req)
    assert again.name == first.name
    assert again.etag == first.etag
    other = alice.CreateAsset(
        pb.asset_svc.CreateAssetRequest(asset=req.asset, request_id=str(uuid.uuid4()))
    )
    assert other.name != first.name
    no_key_1 = alice.CreateAsset(pb.asset_svc.CreateAssetRequest(asset=req.asset))
    no_key_2 = alice.CreateAsset(pb.asset_svc.CreateAssetRequest(asset=req.asset))
    assert no_key_1.name != no_key_2.name


def test_get_unknown_asset_is_not_found(pb, alice):
    expect_error(
        grpc.StatusCode.NOT_FOUND, alice.GetAsset, pb.asset_svc.GetAssetRequest(name=f"assets/{uuid.uuid4()}")
    )


@pytest.mark.parametrize("name", ["", "assets/", "assets/not-a-uuid", "widgets/123", "nonsense"])
def test_get_with_a_malformed_name_is_invalid_argument_naming_name(pb, alice, name):
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, alice.GetAsset, pb.asset_svc.GetAssetRequest(name=name))
    assert "name" in bad_request_fields(err)


# --------------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------------


def test_invalid_create_names_every_bad_field(pb, alice):
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.CreateAsset,
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_UNSPECIFIED, display_name="")
        ),
    )
    fields = bad_request_fields(err)
    assert "asset.display_name" in fields, fields
    assert "asset.kind" in fields, fields
    assert all(fields.values()), f"every violation should say why: {fields}"


@pytest.mark.parametrize(
    "fields, bad_field",
    [
        ({"display_name": ""}, "asset.display_name"),
        ({"display_name": "x" * 201}, "asset.display_name"),
        ({"kind": 0}, "asset.kind"),
        ({"kind": 99}, "asset.kind"),
        ({"description": "d" * 10_001}, "asset.description"),
        ({"cover_image_uri": "https://example.com/" + "a" * 2_048}, "asset.cover_image_uri"),
        ({"labels": {"Team": "x"}}, "asset.labels"),
        ({"labels": {"team": "Has Space"}}, "asset.labels"),
        ({"labels": {f"k{i}": "v" for i in range(65)}}, "asset.labels"),
    ],
    ids=[
        "empty-name",
        "name-201",
        "kind-unspecified",
        "kind-unknown",
        "description-10001",
        "cover-uri-too-long",
        "label-key-uppercase",
        "label-value-space",
        "65-labels",
    ],
)
def test_invalid_create_field(pb, alice, fields, bad_field):
    asset = {"kind": pb.asset.ASSET_KIND_DATASET, "display_name": unique("bad"), **fields}
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.CreateAsset,
        pb.asset_svc.CreateAssetRequest(asset=pb.asset.Asset(**asset)),
    )
    violations = bad_request_fields(err)
    assert any(f == bad_field or f.startswith(bad_field + ".") or f.startswith(bad_field + "[")
               for f in violations), violations


def test_boundary_values_are_accepted(pb, make_asset):
    asset = make_asset(
        display_name="x" * 200,
        description="d" * 10_000,
        labels={f"k{i}": "v" for i in range(64)},
    )
    assert len(asset.display_name) == 200
    assert len(asset.labels) == 64


def test_create_without_asset_is_invalid_argument(pb, alice):
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, alice.CreateAsset, pb.asset_svc.CreateAssetRequest())
    assert "asset" in bad_request_fields(err)


def test_overlong_request_id_is_invalid_argument(pb, alice):
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.CreateAsset,
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name=unique("rid")),
            request_id="r" * 129,
        ),
    )
    assert "request_id" in bad_request_fields(err)


def test_lengths_count_characters_not_bytes(pb, make_asset, alice):
    """display_name is "1 to 200 characters"; description "at most 10,000 characters"."""
    asset = make_asset(display_name="é" * 200, description="ü" * 10_000)
    assert asset.display_name == "é" * 200
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.CreateAsset,
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name="é" * 201)
        ),
    )
    assert "asset.display_name" in bad_request_fields(err)


@pytest.mark.parametrize("filler", ["r", "é"], ids=["ascii", "non-ascii"])
def test_request_id_of_128_characters_is_accepted(pb, alice, filler):
    """CreateAssetRequest.request_id: "Optional idempotency key (at most 128 characters)"."""
    request_id = filler * 96 + uuid.uuid4().hex  # 128 characters
    assert len(request_id) == 128
    req = pb.asset_svc.CreateAssetRequest(
        asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name=unique("rid")), request_id=request_id
    )
    first = alice.CreateAsset(req)
    assert alice.CreateAsset(req).name == first.name


@pytest.mark.parametrize(
    "labels, ok",
    [
        ({"a" * 63: "v"}, True),
        ({"a" * 64: "v"}, False),
        ({"team": "v" * 63}, True),
        ({"team": "v" * 64}, False),
        ({"team": ""}, True),
        ({"1team": "v"}, False),
        ({"_team": "v"}, False),
        ({"t-e_a9m": "a-b_9"}, True),
        ({"a.b": "v"}, False),
    ],
    ids=["key-63", "key-64", "value-63", "value-64", "value-empty", "key-digit-first", "key-underscore-first",
         "all-allowed-chars", "key-dot"],
)
def test_label_rules(pb, alice, labels, ok):
    req = pb.asset_svc.CreateAssetRequest(
        asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name=unique("lbl"), labels=labels)
    )
    if ok:
        assert dict(alice.CreateAsset(req).labels) == labels
    else:
        err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, alice.CreateAsset, req)
        assert any(f.startswith("asset.labels") for f in bad_request_fields(err))


@pytest.mark.parametrize(
    "uri, ok",
    [
        ("https://example.com/cover.png", True),
        ("http://example.com/cover.png", True),
        ("ftp://example.com/cover.png", False),
        ("javascript:alert(1)", False),
        ("not a uri", False),
    ],
)
def test_cover_image_uri_rules(pb, alice, uri, ok):
    req = pb.asset_svc.CreateAssetRequest(
        asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name=unique("cov"), cover_image_uri=uri)
    )
    if ok:
        assert alice.CreateAsset(req).cover_image_uri == uri
    else:
        err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, alice.CreateAsset, req)
        assert "asset.cover_image_uri" in bad_request_fields(err)


def test_oversized_message_is_refused(pb, alice):
    """The gateway refuses request messages over max_message_bytes (default 4,195,328)."""
    req = pb.asset_svc.CreateAssetRequest(
        asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name=unique("big"), description="x" * 4_300_000)
    )
    expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, alice.CreateAsset, req)
    # The gateway still serves normal calls afterwards.
    assert alice.ListAssets(pb.asset_svc.ListAssetsRequest(page_size=1)).assets


def test_concurrent_retries_with_one_request_id_create_one_asset(pb, alice):
    req = pb.asset_svc.CreateAssetRequest(
        asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name=unique("race")),
        request_id=str(uuid.uuid4()),
    )
    barrier = threading.Barrier(8)

    def create(_):
        barrier.wait()
        try:
            return alice.CreateAsset(req).name
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()}"

    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(create, range(8)))
    assert len(set(names)) == 1 and names[0].startswith("assets/"), names


# --------------------------------------------------------------------------------------------------------------
# List
# --------------------------------------------------------------------------------------------------------------


def test_list_filters_by_kind_and_label(pb, alice, make_asset):
    team = unique("team").replace("-", "_")
    dataset = make_asset(labels={"team": team})
    model = make_asset(kind=pb.asset.ASSET_KIND_MODEL, labels={"team": team})
    make_asset(labels={"team": team + "x"})

    both = list_all(alice, pb, filter=f'labels.team = "{team}"')
    assert [a.name for a in both] == [dataset.name, model.name]
    datasets = list_all(alice, pb, filter=f'kind = DATASET AND labels.team = "{team}"')
    assert [a.name for a in datasets] == [dataset.name]
    models = list_all(alice, pb, filter=f'kind = MODEL AND labels.team = "{team}"')
    assert [a.name for a in models] == [model.name]


def test_list_orders(pb, alice, make_asset):
    batch = unique("ord").replace("-", "_")
    created = [make_asset(display_name=n, labels={"batch": batch}) for n in ["b", "c", "a"]]
    flt = f'labels.batch = "{batch}"'
    names = lambda assets: [a.display_name for a in assets]  # noqa: E731
    assert names(list_all(alice, pb, filter=flt)) == ["b", "c", "a"]
    assert names(list_all(alice, pb, filter=flt, order_by="create_time")) == ["b", "c", "a"]
    assert names(list_all(alice, pb, filter=flt, order_by="create_time desc")) == ["a", "c", "b"]
    assert names(list_all(alice, pb, filter=flt, order_by="display_name")) == ["a", "b", "c"]
    assert names(list_all(alice, pb, filter=flt, order_by="display_name desc")) == ["c", "b", "a"]
    # Paging one at a time gives the same order.
    assert names(list_all(alice, pb, filter=flt, order_by="display_name", page_size=1)) == ["a", "b", "c"]
    assert len(created) == 3


def test_pagination_of_250_assets_in_pages_of_100(pb, alice, make_asset):
    batch = unique("page").replace("-", "_")
    created = [make_asset(display_name=f"item {i:03}", labels={"batch": batch}).name for i in range(250)]
    assert len(set(created)) == 250

    request = dict(page_size=100, filter=f'labels.batch = "{batch}"')
    pages, token = [], ""
    while True:
        page = alice.ListAssets(pb.asset_svc.ListAssetsRequest(page_token=token, **request))
        pages.append([a.name for a in page.assets])
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 10, "too many pages"
    assert [len(p) for p in pages] == [100, 100, 50]
    seen = [name for page in pages for name in page]
    assert len(seen) == len(set(seen)), "an asset appeared on two pages"
    assert set(seen) == set(created), "pages missed or added assets"
    assert seen == created, "default order is create_time ascending"


def test_page_size_bounds(pb, alice, make_asset):
    batch = unique("size").replace("-", "_")
    for _ in range(3):
        make_asset(labels={"batch": batch})
    flt = f'labels.batch = "{batch}"'
    assert len(alice.ListAssets(pb.asset_svc.ListAssetsRequest(filter=flt, page_size=0)).assets) == 3
    assert len(alice.ListAssets(pb.asset_svc.ListAssetsRequest(filter=flt, page_size=1000)).assets) == 3
    for bad in (-1, 1001):
        err = expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            alice.ListAssets,
            pb.asset_svc.ListAssetsRequest(filter=flt, page_size=bad),
        )
        assert "page_size" in bad_request_fields(err)


@pytest.mark.parametrize("field, value", [("filter", "colour = red"), ("order_by", "owner")])
def test_bad_filter_or_order_is_invalid_argument(pb, alice, field, value):
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, alice.ListAssets, pb.asset_svc.ListAssetsRequest(**{field: value})
    )
    assert field in bad_request_fields(err)


def test_archived_filter_false_excludes_archived(pb, alice, make_asset):
    batch = unique("arch").replace("-", "_")
    live = make_asset(labels={"batch": batch})
    gone = make_asset(labels={"batch": batch})
    alice.DeleteAsset(pb.asset_svc.DeleteAssetRequest(name=gone.name))
    flt = f'labels.batch = "{batch}"'
    assert [a.name for a in list_all(alice, pb, filter=f"{flt} AND archived = false", show_deleted=True)] == [
        live.name
    ]
    assert [a.name for a in list_all(alice, pb, filter=f"{flt} AND archived = true", show_deleted=True)] == [
        gone.name
    ]


@pytest.mark.parametrize("order_by", ["display_name", "display_name desc", "create_time", "create_time desc"])
def test_pagination_over_ties_has_no_gaps_or_repeats(pb, alice, make_asset, order_by):
    batch = unique("tie").replace("-", "_")
    created = {make_asset(display_name="same name", labels={"batch": batch}).name for _ in range(7)}
    created |= {make_asset(display_name=n, labels={"batch": batch}).name for n in ["a", "z"]}
    names = [a.name for a in list_all(alice, pb, filter=f'labels.batch = "{batch}"', order_by=order_by, page_size=2)]
    assert len(names) == len(set(names)) == 9
    assert set(names) == created


# --------------------------------------------------------------------------------------------------------------
# Page tokens
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture
def first_page(pb, alice, make_asset):
    """(request, response) of the first page of a 3-asset listing in pages of 1."""
    batch = unique("tok").replace("-", "_")
    for _ in range(3):
        make_asset(labels={"batch": batch})
    request = dict(page_size=1, filter=f'labels.batch = "{batch}"')
    page = alice.ListAssets(pb.asset_svc.ListAssetsRequest(**request))
    assert page.next_page_token
    return request, page


def test_page_token_works_for_the_same_query(pb, alice, first_page):
    request, page = first_page
    second = alice.ListAssets(pb.asset_svc.ListAssetsRequest(page_token=page.next_page_token, **request))
    assert len(second.assets) == 1
    assert second.assets[0].name != page.assets[0].name
    # A token can be replayed: it is a cursor, not a session.
    again = alice.ListAssets(pb.asset_svc.ListAssetsRequest(page_token=page.next_page_token, **request))
    assert [a.name for a in again.assets] == [a.name for a in second.assets]


def test_page_token_of_another_user_is_invalid_argument(pb, bob, first_page):
    request, page = first_page
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        bob.ListAssets,
        pb.asset_svc.ListAssetsRequest(page_token=page.next_page_token, **request),
    )
    assert "page_token" in bad_request_fields(err)


def _altered(token: str) -> list[str]:
    flip = lambda c: "A" if c != "A" else "B"  # noqa: E731
    mid = len(token) // 2
    return [
        flip(token[0]) + token[1:],  # cursor changed
        token[:mid] + flip(token[mid]) + token[mid + 1:],
        token[:-1] + flip(token[-1]),  # signature changed
        token[:-4],  # truncated
        token + "A",
        "garbage",
        token.replace(".", ""),
    ]


def test_altered_page_token_is_invalid_argument(pb, alice, first_page):
    request, page = first_page
    for bad in _altered(page.next_page_token):
        if bad == page.next_page_token:
            continue
        err = expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            alice.ListAssets,
            pb.asset_svc.ListAssetsRequest(page_token=bad, **request),
        )
        assert "page_token" in bad_request_fields(err), bad


@pytest.mark.parametrize(
    "change",
    [
        {"filter": 'labels.batch = "other"'},
        {"filter": ""},
        {"order_by": "display_name"},
        {"order_by": "create_time desc"},
        {"show_deleted": True},
    ],
    ids=["other-filter", "no-filter", "other-order", "desc-order", "show-deleted"],
)
def test_page_token_bound_to_the_query(pb, alice, first_page, change):
    request, page = first_page
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.ListAssets,
        pb.asset_svc.ListAssetsRequest(page_token=page.next_page_token, **{**request, **change}),
    )
    assert "page_token" in bad_request_fields(err)


def test_page_token_survives_a_page_size_change(pb, alice, first_page):
    request, page = first_page
    rest = alice.ListAssets(
        pb.asset_svc.ListAssetsRequest(page_token=page.next_page_token, **{**request, "page_size": 10})
    )
    assert len(rest.assets) == 2
    assert not rest.next_page_token


# --------------------------------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------------------------------


def test_update_changes_only_masked_fields(pb, alice, make_asset):
    created = make_asset(display_name="Housing", description="old", labels={"team": "pricing"})
    updated = alice.UpdateAsset(
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(name=created.name, display_name="Housing (2024)", description="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    assert updated.display_name == "Housing (2024)"
    assert updated.description == "old"
    assert dict(updated.labels) == {"team": "pricing"}
    assert updated.kind == created.kind
    assert updated.create_time == created.create_time
    assert updated.update_time.ToDatetime() > created.update_time.ToDatetime()
    assert updated.etag and updated.etag != created.etag
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=created.name)) == updated


def test_update_mask_can_clear_a_field(pb, alice, make_asset):
    created = make_asset(description="to clear", labels={"a": "1"})
    updated = alice.UpdateAsset(
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(name=created.name),
            update_mask=field_mask_pb2.FieldMask(paths=["description", "labels"]),
        )
    )
    assert updated.description == ""
    assert dict(updated.labels) == {}
    assert updated.display_name == created.display_name


def test_update_without_mask_changes_the_fields_set(pb, alice, make_asset):
    created = make_asset(description="old", labels={"team": "a"})
    updated = alice.UpdateAsset(
        pb.asset_svc.UpdateAssetRequest(asset=pb.asset.Asset(name=created.name, description="new"))
    )
    assert updated.description == "new"
    assert updated.display_name == created.display_name
    assert dict(updated.labels) == {"team": "a"}


def test_update_model_subfield(pb, alice):
    created = alice.CreateAsset(
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(
                kind=pb.asset.ASSET_KIND_MODEL,
                display_name=unique("m"),
                model=pb.asset.ModelDetails(framework="pytorch 2.3", format=pb.asset.MODEL_FORMAT_PYTORCH),
            )
        )
    )
    updated = alice.UpdateAsset(
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(
                name=created.name,
                model=pb.asset.ModelDetails(framework="pytorch 2.4", format=pb.asset.MODEL_FORMAT_ONNX),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["model.framework"]),
        )
    )
    assert updated.model.framework == "pytorch 2.4"
    assert updated.model.format == pb.asset.MODEL_FORMAT_PYTORCH


@pytest.mark.parametrize("path", ["kind", "owner", "name", "nonexistent"])
def test_update_mask_with_a_non_updatable_path_is_invalid_argument(pb, alice, make_asset, path):
    created = make_asset()
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.UpdateAsset,
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(name=created.name, kind=pb.asset.ASSET_KIND_MODEL, display_name="x"),
            update_mask=field_mask_pb2.FieldMask(paths=[path]),
        ),
    )
    assert "update_mask" in bad_request_fields(err)
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=created.name)) == created


def test_update_to_an_invalid_value_is_invalid_argument(pb, alice, make_asset):
    created = make_asset()
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        alice.UpdateAsset,
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(name=created.name, display_name=""),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
    )
    assert "asset.display_name" in bad_request_fields(err)
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=created.name)) == created


def test_update_with_current_etag_succeeds_and_stale_etag_fails(pb, alice, make_asset):
    created = make_asset(display_name="v1")
    v2 = alice.UpdateAsset(
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(name=created.name, display_name="v2", etag=created.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        )
    )
    assert v2.display_name == "v2"
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        alice.UpdateAsset,
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(name=created.name, display_name="v3", etag=created.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
    )
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        alice.DeleteAsset,
        pb.asset_svc.DeleteAssetRequest(name=created.name, etag=created.etag),
    )
    now = alice.GetAsset(pb.asset_svc.GetAssetRequest(name=created.name))
    assert now == v2, "a stale write must change nothing"


def test_concurrent_updates_with_one_etag_let_exactly_one_win(pb, alice, make_asset):
    created = make_asset(display_name="start")
    barrier = threading.Barrier(8)

    def update(i):
        barrier.wait()
        try:
            out = alice.UpdateAsset(
                pb.asset_svc.UpdateAssetRequest(
                    asset=pb.asset.Asset(name=created.name, display_name=f"writer {i}", etag=created.etag),
                    update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
                )
            )
            return ("OK", out.display_name)
        except grpc.RpcError as e:
            return (e.code().name, e.details())

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(update, range(8)))
    winners = [r for r in results if r[0] == "OK"]
    assert len(winners) == 1, results
    assert all(r[0] == "FAILED_PRECONDITION" for r in results if r[0] != "OK"), results
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=created.name)).display_name == winners[0][1]


# --------------------------------------------------------------------------------------------------------------
# Delete (archive) / Undelete
# --------------------------------------------------------------------------------------------------------------


def test_delete_archives_and_undelete_restores(pb, alice, make_asset):
    batch = unique("del").replace("-", "_")
    asset = make_asset(labels={"batch": batch})
    keep = make_asset(labels={"batch": batch})
    flt = f'labels.batch = "{batch}"'

    deleted = alice.DeleteAsset(pb.asset_svc.DeleteAssetRequest(name=asset.name, etag=asset.etag))
    assert deleted.archived
    assert deleted.HasField("archive_time")
    assert deleted.etag != asset.etag
    assert deleted.display_name == asset.display_name

    # Still readable, out of default lists, in show_deleted and archived = true lists.
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=asset.name)) == deleted
    assert [a.name for a in list_all(alice, pb, filter=flt)] == [keep.name]
    assert [a.name for a in list_all(alice, pb, filter=flt, show_deleted=True)] == [asset.name, keep.name]
    assert [a.name for a in list_all(alice, pb, filter=f"{flt} AND archived = true")] == [asset.name]

    # Deleting again finds the work done.
    again = alice.DeleteAsset(pb.asset_svc.DeleteAssetRequest(name=asset.name))
    assert again.archived and again.name == asset.name

    # An archived asset cannot be updated.
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        alice.UpdateAsset,
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(name=asset.name, display_name="nope"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
    )

    restored = alice.UndeleteAsset(pb.asset_svc.UndeleteAssetRequest(name=asset.name))
    assert not restored.archived
    assert restored.etag != deleted.etag
    assert not restored.HasField("archive_time")
    assert restored.display_name == asset.display_name
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=asset.name)) == restored
    assert [a.name for a in list_all(alice, pb, filter=flt)] == [asset.name, keep.name]

    # Undeleting what is not archived is an error, and changes nothing.
    with pytest.raises(grpc.RpcError) as info:
        alice.UndeleteAsset(pb.asset_svc.UndeleteAssetRequest(name=asset.name))
    assert info.value.code() in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION)
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=asset.name)) == restored


def test_delete_with_an_etag_that_does_not_match_fails_even_when_archived(pb, alice, make_asset):
    """DeleteAssetRequest.etag: "When set, must match the current etag." """
    asset = make_asset()
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        alice.DeleteAsset,
        pb.asset_svc.DeleteAssetRequest(name=asset.name, etag='"999"'),
    )
    deleted = alice.DeleteAsset(pb.asset_svc.DeleteAssetRequest(name=asset.name, etag=asset.etag))
    # Once archived, an etag the asset never had must still be refused.
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        alice.DeleteAsset,
        pb.asset_svc.DeleteAssetRequest(name=asset.name, etag='"999"'),
    )
    # The current etag of the archived asset matches, so that delete is a no-op success.
    again = alice.DeleteAsset(pb.asset_svc.DeleteAssetRequest(name=asset.name, etag=deleted.etag))
    assert again.archived


def test_delete_unknown_asset_is_not_found(pb, alice):
    for call, req in [
        (alice.DeleteAsset, pb.asset_svc.DeleteAssetRequest(name=f"assets/{uuid.uuid4()}")),
        (alice.UndeleteAsset, pb.asset_svc.UndeleteAssetRequest(name=f"assets/{uuid.uuid4()}")),
        (
            alice.UpdateAsset,
            pb.asset_svc.UpdateAssetRequest(
                asset=pb.asset.Asset(name=f"assets/{uuid.uuid4()}", display_name="x"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            ),
        ),
    ]:
        expect_error(grpc.StatusCode.NOT_FOUND, call, req)


# --------------------------------------------------------------------------------------------------------------
# Ownership
# --------------------------------------------------------------------------------------------------------------


def test_bob_cannot_see_or_touch_alices_asset(pb, alice, bob, make_asset):
    asset = make_asset(display_name="alice only")
    expect_error(grpc.StatusCode.NOT_FOUND, bob.GetAsset, pb.asset_svc.GetAssetRequest(name=asset.name))
    err = expect_error(
        grpc.StatusCode.NOT_FOUND,
        bob.UpdateAsset,
        pb.asset_svc.UpdateAssetRequest(
            asset=pb.asset.Asset(name=asset.name, display_name="bob was here"),
            update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
        ),
    )
    assert "bob was here" not in (err.details() or "")
    expect_error(grpc.StatusCode.NOT_FOUND, bob.DeleteAsset, pb.asset_svc.DeleteAssetRequest(name=asset.name))
    expect_error(
        grpc.StatusCode.NOT_FOUND,
        bob.DeleteAsset,
        pb.asset_svc.DeleteAssetRequest(name=asset.name, etag=asset.etag),
    )
    # The answer for a real asset of alice's is the same as for one that does not exist.
    unknown = expect_error(
        grpc.StatusCode.NOT_FOUND, bob.GetAsset, pb.asset_svc.GetAssetRequest(name=f"assets/{uuid.uuid4()}")
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND

    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=asset.name)) == asset


def test_bob_cannot_undelete_alices_archived_asset(pb, alice, bob, make_asset):
    asset = make_asset()
    deleted = alice.DeleteAsset(pb.asset_svc.DeleteAssetRequest(name=asset.name))
    expect_error(grpc.StatusCode.NOT_FOUND, bob.GetAsset, pb.asset_svc.GetAssetRequest(name=asset.name))
    expect_error(grpc.StatusCode.NOT_FOUND, bob.UndeleteAsset, pb.asset_svc.UndeleteAssetRequest(name=asset.name))
    assert alice.GetAsset(pb.asset_svc.GetAssetRequest(name=asset.name)) == deleted


def test_bobs_list_is_empty(pb, alice, bob, make_asset):
    make_asset(display_name="visible to alice")
    assert len(alice.ListAssets(pb.asset_svc.ListAssetsRequest(page_size=1)).assets) == 1
    for request in [
        pb.asset_svc.ListAssetsRequest(),
        pb.asset_svc.ListAssetsRequest(page_size=1000),
        pb.asset_svc.ListAssetsRequest(page_size=1000, show_deleted=True),
        pb.asset_svc.ListAssetsRequest(page_size=1000, filter="archived = true"),
        pb.asset_svc.ListAssetsRequest(page_size=1000, filter="kind = DATASET"),
    ]:
        page = bob.ListAssets(request)
        assert list(page.assets) == []
        assert page.next_page_token == ""


# --------------------------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer hwdev_not-a-real-token", "Bearer ", "Basic YWxpY2U6c2VjcmV0", "hwdev_no_scheme"],
    ids=["none", "unknown-token", "empty-token", "basic", "no-scheme"],
)
def test_calls_without_valid_credentials_are_unauthenticated(pb, channel_for, authorization):
    channel = channel_for(None, raw_authorization=authorization) if authorization else channel_for(None)
    stub = pb.asset_grpc.AssetServiceStub(channel)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, stub.ListAssets, pb.asset_svc.ListAssetsRequest())
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        stub.CreateAsset,
        pb.asset_svc.CreateAssetRequest(
            asset=pb.asset.Asset(kind=pb.asset.ASSET_KIND_DATASET, display_name="anonymous")
        ),
    )


def test_a_client_cannot_claim_a_principal_by_header(pb, channel_for, make_asset):
    asset = make_asset()
    channel = channel_for("bob")
    stub = pb.asset_grpc.AssetServiceStub(channel)
    metadata = [("x-highwind-principal", "users/alice")]
    expect_error(
        grpc.StatusCode.NOT_FOUND, stub.GetAsset, pb.asset_svc.GetAssetRequest(name=asset.name), metadata=metadata
    )
    anon = pb.asset_grpc.AssetServiceStub(channel_for(None))
    expect_error(
        grpc.StatusCode.UNAUTHENTICATED,
        anon.GetAsset,
        pb.asset_svc.GetAssetRequest(name=asset.name),
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------------------------
# Health and the not-yet-implemented surface
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["", *PUBLIC_SERVICES])
def test_health_is_serving_without_a_token(anonymous_channel, service):
    health = health_pb2_grpc.HealthStub(anonymous_channel)
    response = health.Check(health_pb2.HealthCheckRequest(service=service))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_of_an_unknown_service_is_not_found(anonymous_channel):
    health = health_pb2_grpc.HealthStub(anonymous_channel)
    expect_error(
        grpc.StatusCode.NOT_FOUND, health.Check, health_pb2.HealthCheckRequest(service="highwind.nope.v1.Nothing")
    )


def test_images_of_docker_repo_assets_list_and_give_push_commands(pb, make_asset, channel_for):
    images = pb.image_grpc.ImageServiceStub(channel_for("alice"))
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, images.ListImages, pb.image_svc.ListImagesRequest())
    assert "parent" in bad_request_fields(err)
    dataset = make_asset()
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, images.ListImages, pb.image_svc.ListImagesRequest(parent=dataset.name)
    )
    assert "parent" in bad_request_fields(err)
    repo = make_asset(kind=pb.asset.ASSET_KIND_DOCKER_REPO)
    listing = pb.image_svc.ListImagesRequest(parent=repo.name)
    if repo.HasField("docker_repo"):
        assert repo.docker_repo.repository.endswith("/" + repo.uid)
        assert list(images.ListImages(listing).images) == []
        commands = images.GetPushCommands(pb.image_svc.GetPushCommandsRequest(parent=repo.name, tag="v1"))
        assert commands.image_uri == repo.docker_repo.image_uri_prefix + ":v1"
        assert "--password-stdin" in commands.login_command
        assert commands.push_command == "docker push " + commands.image_uri
        err = expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            images.GetPushCommands,
            pb.image_svc.GetPushCommandsRequest(parent=repo.name, tag="t" * 129),
        )
        assert "tag" in bad_request_fields(err)
    else:
        # No docker-registry on this machine: the platform runs without images and says so.
        expect_error(grpc.StatusCode.FAILED_PRECONDITION, images.ListImages, listing)
    strangers = pb.image_grpc.ImageServiceStub(channel_for("bob"))
    expect_error(grpc.StatusCode.NOT_FOUND, strangers.ListImages, listing)


def test_unknown_service_is_unimplemented(channel_for):
    channel = channel_for("alice")
    call = channel.unary_unary(
        "/highwind.nope.v1.NothingService/DoNothing",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    expect_error(grpc.StatusCode.UNIMPLEMENTED, call, b"")


def test_unimplemented_methods_still_require_credentials(pb, anonymous_channel):
    stub = pb.usecase_grpc.UseCaseServiceStub(anonymous_channel)
    expect_error(grpc.StatusCode.UNAUTHENTICATED, stub.CreateUseCase, pb.usecase_svc.CreateUseCaseRequest())


def test_marketplace_publish_search_acquire_unpublish(pb, channel_for):
    """A seller publishes a release; a buyer finds it, acquires it once, and keeps it after it is withdrawn."""
    seller = pb.usecase_grpc.UseCaseServiceStub(channel_for("alice"))
    buyer = pb.market_grpc.MarketplaceServiceStub(channel_for("bob"))
    word = f"python{uuid.uuid4().hex[:12]}"
    use_case = seller.CreateUseCase(
        pb.usecase_svc.CreateUseCaseRequest(
            use_case=pb.use_case.UseCase(
                display_name=f"Churn {word}",
                description="Who leaves next month",
                model_card="## Model\nLogistic regression.",
                price=pb.use_case.Money(currency_code="EUR", units=3, nanos=500_000_000),
            )
        )
    )
    release = seller.CreateRelease(pb.usecase_svc.CreateReleaseRequest(parent=use_case.name))
    published = seller.PublishUseCase(pb.usecase_svc.PublishUseCaseRequest(name=use_case.name, release=release.name))
    assert published.use_case.published and published.listing.release == release.name

    found = buyer.SearchListings(pb.market_svc.SearchListingsRequest(query=word.upper()))
    assert [listing.name for listing in found.listings] == [published.listing.name]
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, buyer.SearchListings, pb.market_svc.SearchListingsRequest(filter="price > 3")
    )
    assert "filter" in bad_request_fields(err)

    acquire = pb.market_svc.AcquireListingRequest(name=published.listing.name, request_id="py-checkout")
    entitlement = buyer.AcquireListing(acquire)
    assert (entitlement.price_paid.units, entitlement.price_paid.nanos) == (3, 500_000_000)
    assert entitlement.payment_reference.startswith("ledger/")
    assert buyer.AcquireListing(acquire) == entitlement

    seller.UnpublishUseCase(pb.usecase_svc.UnpublishUseCaseRequest(name=use_case.name))
    assert not buyer.SearchListings(pb.market_svc.SearchListingsRequest(query=word)).listings
    held = buyer.ListEntitlements(pb.market_svc.ListEntitlementsRequest())
    assert entitlement in held.entitlements
