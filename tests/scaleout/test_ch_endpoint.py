"""The test-only ClickHouse HTTP endpoint, exercised through clickhouse-connect's HTTP client and the
product's own ``Storage`` (what API replicas and workers use against a ClickHouse server)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from schemas.ddl import migrations
from streams.storage import Claims, Storage, StorageError
from tests.ch_endpoint import EndpointProcess
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointProcess]:
    with EndpointProcess(tmp_path_factory.mktemp("ch-endpoint")) as running:
        yield running


@pytest.fixture
def client(endpoint: EndpointProcess) -> Iterator[Client]:
    client = clickhouse_connect.get_client(dsn=endpoint.url, autogenerate_session_id=False)
    client.command("CREATE DATABASE IF NOT EXISTS cc")
    client.command("DROP TABLE IF EXISTS cc.t")
    client.command("CREATE TABLE cc.t (a UInt32, s String, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY a")
    yield client
    client.close()


ROWS = [[1, "x", dt.datetime(2025, 1, 1, 12, 0, 0, 123000)], [2, "ü", dt.datetime(2025, 1, 2)]]


@pytest.mark.parametrize("compress", ["lz4", "gzip", False])
def test_insert_and_query_native(endpoint: EndpointProcess, compress: str | bool) -> None:
    """Native bodies both ways, compressed (insert body and response) or not; bind parameters."""
    client = clickhouse_connect.get_client(dsn=endpoint.url, compress=compress, autogenerate_session_id=False)
    client.command("CREATE DATABASE IF NOT EXISTS cc")
    client.command(f"CREATE TABLE IF NOT EXISTS cc.n_{compress} (a UInt32, s String) ENGINE = MergeTree ORDER BY a")
    client.insert(f"cc.n_{compress}", [[i, f"s{i}"] for i in range(5000)], column_names=["a", "s"])
    result = client.query(
        f"SELECT count(), sum(a), any(s) FROM cc.n_{compress} WHERE a >= {{low:UInt32}}", parameters={"low": 10}
    )
    assert result.result_rows[0][:2] == (4990, sum(range(10, 5000)))
    assert result.summary["query_id"]


def test_dataframes_arrow_and_row_binary(client: Client) -> None:
    client.insert("cc.t", ROWS, column_names=["a", "s", "at"])
    frame = client.query_df("SELECT a, s FROM cc.t ORDER BY a")
    assert frame["s"].tolist() == ["x", "ü"]
    assert client.query_arrow("SELECT a FROM cc.t ORDER BY a").column("a").to_pylist() == [1, 2]
    assert client.query("SELECT at FROM cc.t ORDER BY a").result_rows[0][0] == ROWS[0][2]
    raw = client.raw_query("SELECT a, s FROM cc.t ORDER BY a FORMAT JSONEachRow")
    assert raw.splitlines() == [b'{"a":1,"s":"x"}', b'{"a":2,"s":"\xc3\xbc"}']


def test_raw_json_insert_with_settings_and_command(client: Client) -> None:
    client.raw_insert(
        "cc.t",
        ["a", "s", "at"],
        insert_block=b'{"a":7,"s":"j","at":"2025-03-04T05:06:07Z"}\n',
        fmt="JSONEachRow",
        settings={"date_time_input_format": "best_effort"},
    )
    assert client.command("SELECT count() FROM cc.t WHERE a = 7") == 1
    with pytest.raises(DatabaseError):  # the setting really reaches the engine: without it, ISO 'Z' fails
        client.raw_insert(
            "cc.t",
            ["a", "s", "at"],
            insert_block=b'{"a":8,"s":"j","at":"2025-03-04T05:06:07Z"}\n',
            fmt="JSONEachRow",
            settings={"date_time_input_format": "basic"},
        )


def test_errors_like_clickhouse(endpoint: EndpointProcess, client: Client) -> None:
    with pytest.raises(DatabaseError, match="code: 60"):
        client.query("SELECT * FROM cc.nope")
    response = httpx.post(f"{endpoint.url}/?query_id=q-1&database=cc", content=b"SELEC 1")
    assert response.status_code == 400
    assert response.headers["X-ClickHouse-Exception-Code"] == "62"
    assert response.headers["X-ClickHouse-Query-Id"] == "q-1"
    assert response.text.startswith("Code: 62. DB::Exception")
    ok = httpx.post(f"{endpoint.url}/?database=cc&default_format=TSV", content=b"SELECT count() FROM t FORMAT TSV")
    assert ok.status_code == 200
    assert ok.headers["X-ClickHouse-Format"] == "TSV"
    assert "X-ClickHouse-Summary" in ok.headers


def test_product_storage_over_http(endpoint: EndpointProcess, tmp_path: Path) -> None:
    """What API replicas and workers do: migrate (with its lock), insert JSON and rows, read, claim."""
    settings = make_settings(tmp_path, clickhouse_dsn=endpoint.dsn("lw_storage"))
    storage = Storage(settings)
    assert not storage.embedded
    assert storage.migrate() == [m.version for m in migrations()]
    assert storage.migrate() == []
    storage.insert_rows("claims", ["project", "kind", "claim_key", "owner"], [["p", "alert", "k", "me"]])
    assert storage.scalar("SELECT owner FROM lw_storage.claims WHERE claim_key = {k:String}", {"k": "k"}) == "me"
    claims = [Claims(storage, owner=f"o{i}") for i in range(3)]
    assert [c.claim("p", "alert", ["shared"]) for c in claims] == [{"shared"}, set(), set()]
    with pytest.raises(StorageError):
        storage.query("SELECT * FROM lw_storage.missing")
