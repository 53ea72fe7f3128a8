"""atri.services: the process's services built once from settings, shared, rebuilt when unusable, released."""
import threading
from dataclasses import dataclass
from pathlib import Path

import atri.services
from atri.mcp_tools import McpConfigError
from atri.services import Services, database_url
from atri.settings import QuotaLimits, Settings


def test_each_service_is_built_once_on_the_one_store(tmp_path):
    services = Services(f"sqlite:///{tmp_path / 'atri.db'}")
    store = services.store
    assert services.store is store
    assert services.answerer is services.answerer and services.answerer.store is store
    assert services.batch_runner is services.batch_runner and services.batch_runner.store is store
    assert services.password_gate.store is store
    services.close()


def test_quotas_exist_only_where_the_host_set_a_limit_and_follow_the_limits(tmp_path):
    services = Services(f"sqlite:///{tmp_path / 'atri.db'}")
    assert services.quotas(QuotaLimits()) is None
    daily = QuotaLimits(tokens_per_day=1_000)
    assert services.quotas(daily) is services.quotas(daily)
    assert services.quotas(QuotaLimits(tokens_per_day=2_000)).limits.tokens_per_day == 2_000
    services.close()


def test_settings_choose_the_database_and_a_default_one_is_made_in_the_data_directory(tmp_path):
    named = Services.for_settings(Settings({"ATRI_DATABASE_URL": "sqlite:///elsewhere.db"}))
    assert named.database_url == "sqlite:///elsewhere.db"
    default = database_url(Settings({"ATRI_DATA_DIR": str(tmp_path / "data")}).config)
    assert default == f"sqlite:///{tmp_path / 'data' / 'atri.db'}" and (tmp_path / "data").is_dir()


def test_an_mcp_config_that_cannot_be_read_is_kept_as_the_reason_and_none_is_no_hub(tmp_path):
    services = Services(f"sqlite:///{tmp_path / 'atri.db'}")
    assert services.mcp_hub("", {}) is None
    problem = services.mcp_hub(str(tmp_path / "absent.json"), {})
    assert isinstance(problem, McpConfigError) and services.mcp_hub(str(tmp_path / "absent.json"), {}) is problem


@dataclass
class FakeEngine:
    running: bool = True
    stopped: bool = False

    def stop(self) -> None:
        self.stopped, self.running = True, False


def test_an_engine_that_died_is_started_again_and_close_stops_everything(tmp_path, monkeypatch):
    started: list[FakeEngine] = []
    monkeypatch.setattr(atri.services, "prepare_and_start",
                        lambda model, models_dir, threads: started.append(FakeEngine()) or started[-1])
    services = Services(f"sqlite:///{tmp_path / 'atri.db'}")
    first = services.local_engine("", Path(tmp_path), None)
    assert services.local_engine("", Path(tmp_path), None) is first
    first.running = False  # the server process died
    second = services.local_engine("", Path(tmp_path), None)
    assert second is not first and len(started) == 2
    answerer = services.answerer
    services.close()
    assert second.stopped and answerer._closed.is_set()


def test_visitors_arriving_at_once_share_one_store(tmp_path):
    services = Services(f"sqlite:///{tmp_path / 'atri.db'}")
    stores, go = [], threading.Barrier(8)

    def visit() -> None:
        go.wait()
        stores.append(services.store)

    threads = [threading.Thread(target=visit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(store) for store in stores}) == 1
    services.close()
