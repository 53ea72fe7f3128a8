from atri.providers import catalogue
from atri.settings import Settings, gather_values
from tests.conftest import new_app

DASHSCOPE = catalogue()["dashscope"]


def test_no_key_means_the_local_model():
    assert Settings({}).default_provider_id() == "local"


def test_a_dashscope_key_makes_dashscope_and_qwen3_max_the_default():
    settings = Settings({"OPENAI_API_KEY": "o", "ALIYUN_API_KEY": "a"})  # the tutorial's variable name
    assert settings.default_provider_id() == "dashscope"
    assert settings.default_model_for(DASHSCOPE) == "qwen3-max"
    assert settings.connection(DASHSCOPE).api_key == "a"


def test_base_url_override_for_the_international_endpoint():
    intl = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/"
    settings = Settings({"DASHSCOPE_API_KEY": "k", "DASHSCOPE_BASE_URL": intl})
    assert settings.connection(DASHSCOPE).base_url == intl.rstrip("/")


def test_a_provider_without_a_key_has_no_connection_until_the_visitor_gives_one():
    settings = Settings({})
    assert settings.connection(DASHSCOPE) is None
    assert settings.connection(DASHSCOPE, visitor_key="sk-visitor").api_key == "sk-visitor"


def test_environment_beats_dotenv_beats_secrets(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DASHSCOPE_API_KEY=from-dotenv\nOPENAI_API_KEY=from-dotenv\n")
    values = gather_values({"DASHSCOPE_API_KEY": "from-env"}, dotenv,
                           {"DASHSCOPE_API_KEY": "from-secrets", "OPENAI_API_KEY": "from-secrets", "DEEPSEEK_API_KEY": "s"})
    assert (values["DASHSCOPE_API_KEY"], values["OPENAI_API_KEY"], values["DEEPSEEK_API_KEY"]) == \
        ("from-env", "from-dotenv", "s")


def test_a_broken_local_model_says_why_and_how_to_go_remote(no_key_env):
    import streamlit as st

    st.cache_resource.clear()
    at = new_app()
    assert at.selectbox(key="provider").value == "local"
    assert "ATRI_LOCAL_MODEL names no file" in at.error[0].value
    assert "DASHSCOPE_API_KEY" in at.info[0].value


def test_the_cache_dir_set_only_in_dotenv_serves_token_counting_too(tmp_path, monkeypatch):
    """It used to be honoured by the engine but not by counting: a second 491 MB copy under ~/.cache/atri."""
    from atri.local import MODEL_FILE
    from atri.settings import Settings, gather_values
    from atri.tokenizer import counter_for

    home, models = tmp_path / "home", tmp_path / "models"
    monkeypatch.setenv("HOME", str(home))
    env_file = tmp_path / ".env"
    env_file.write_text(f"ATRI_CACHE_DIR={models}\n")
    settings = Settings(gather_values({}, env_file, None))
    assert settings.config.cache_dir == models
    assert counter_for("qwen3-max", settings.config.cache_dir)("你好,世界") > 0
    assert [path.name for path in models.iterdir()] == [MODEL_FILE]
    assert not (home / ".cache" / "atri").exists()
