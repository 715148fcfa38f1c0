import pytest

from graphrec.core.config import ConfigError, load_config


def test_defaults_file_and_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[graph]\nmin_goods = 5\n[train]\nfanouts = [4, 2]\n")
    cfg = load_config(f, overrides=["recommend.diversity=0.5"], environ={"GRAPHREC_GRAPH__STRICT": "true"})
    assert cfg.graph.min_goods == 5
    assert cfg.graph.strict is True
    assert cfg.train.fanouts == (4, 2)
    assert cfg.recommend.diversity == 0.5
    # The command line wins over the environment, which wins over the file.
    cfg = load_config(f, overrides=["graph.min_goods=7"], environ={"GRAPHREC_GRAPH__MIN_GOODS": "6"})
    assert cfg.graph.min_goods == 7
    assert load_config(f, environ={"GRAPHREC_GRAPH__MIN_GOODS": "6"}).graph.min_goods == 6


@pytest.mark.parametrize(
    "text, overrides, env, message",
    [
        ("[graph]\nmin_godos = 3\n", [], {}, r"unknown config key graph.min_godos in .*c.toml"),
        ("[grpah]\nmin_goods = 3\n", [], {}, r"unknown config section \[grpah\]"),
        ("", ["graph.min_goods=many"], {}, r"graph.min_goods from --set graph.min_goods=many: expected int"),
        ("", ["graph"], {}, r"must look like section.key=value"),
        (
            "",
            [],
            {"GRAPHREC_TRAIN__LRATE": "1"},
            r"unknown config key train.lrate in \$GRAPHREC_TRAIN__LRATE",
        ),
        ("[graph]\nstrict = 3\n", [], {}, r"graph.strict .*expected bool"),
    ],
)
def test_bad_config_is_an_error(tmp_path, text, overrides, env, message):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(f, overrides=overrides, environ=env)


def test_secret_variables_are_not_read_as_config():
    cfg = load_config(None, environ={"GRAPHREC_DATABASE_URL": "postgresql://x", "GRAPHREC_TEST_DATABASE_URL": "y"})
    assert "url" not in cfg.to_dict()["database"]


@pytest.mark.parametrize(
    "env, overrides, message",
    [
        # Both names would be parsed as section__key overrides: the loader must refuse them, not store them.
        ({"GRAPHREC_SERVE__TOKEN": "s3cret"}, [], r"serve.token in \$GRAPHREC_SERVE__TOKEN: .*\$GRAPHREC_SERVE_TOKEN"),
        ({"GRAPHREC_DATABASE__URL": "postgresql://u:pw@h/d"}, [], r"database.url .*\$GRAPHREC_DATABASE_URL"),
        ({}, ["database.url=postgresql://u:pw@h/d"], r"database.url in --set .*\$GRAPHREC_DATABASE_URL"),
    ],
)
def test_secrets_are_refused_as_config_keys(tmp_path, env, overrides, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_config(None, overrides=overrides, environ=env)
    assert "s3cret" not in str(e.value) and "pw@" not in str(e.value)


def test_repo_config_file_loads():
    assert load_config("configs/graphrec.toml").graph.min_goods == 10
