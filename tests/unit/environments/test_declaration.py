"""Reading declarations: every accepted form, and a clear error for every refused one."""

from __future__ import annotations

import json

import pytest

from shared.environments.declaration import DEVCONTAINER_FILE, MOSAIC_FILE, parse_mosaic
from shared.environments.devcontainer import parse_devcontainer, strip_jsonc
from shared.environments.errors import DeclarationError

pytestmark = pytest.mark.unit


def test_the_issue_example_parses() -> None:
    raw = b"""
image = "mosaic/sandbox:latest"
setup = ["apt-get update", "apt-get install -y python3-pytest", "pip install -e .[test]"]
inputs = ["pyproject.toml", "requirements*.txt", "package-lock.json"]
env = { PIP_DISABLE_PIP_VERSION_CHECK = "1" }
"""
    decl = parse_mosaic(raw)
    assert decl.source == MOSAIC_FILE
    assert decl.image == "mosaic/sandbox:latest"
    assert decl.setup[-1] == "pip install -e .[test]"
    assert decl.inputs == ("pyproject.toml", "requirements*.txt", "package-lock.json")
    assert decl.env == {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    assert decl.dockerfile is None
    assert decl.raw == raw


def test_a_dockerfile_declaration_keeps_context_and_args() -> None:
    decl = parse_mosaic(b'dockerfile = "ci/Dockerfile"\ncontext = "./ci"\nargs = { V = "3" }\n')
    assert (decl.dockerfile, decl.context, decl.args) == ("ci/Dockerfile", "ci", {"V": "3"})


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ('setpu = ["make"]', "setpu"),  # a typo is not silently an environment without setup
        ("setup = 'make'", "setup"),
        ("env = { X = 1 }", "env.X"),
        ('image = "a"\ndockerfile = "Dockerfile"', "image, dockerfile"),
        ('context = "x"', "context"),
        ('dockerfile = "../outside/Dockerfile"', "dockerfile"),
        ('dockerfile = "/etc/Dockerfile"', "dockerfile"),
        ('inputs = ["../secrets/*"]', "inputs"),
        ('setup = ["  "]', "setup"),
        ("image = [", "TOML"),
    ],
)
def test_a_bad_file_names_the_file_and_the_field(text: str, names: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        parse_mosaic(text.encode())
    assert MOSAIC_FILE in caught.value.message
    assert names in caught.value.message
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "name", ["GITHUB_TOKEN", "DB_PASSWORD", "OPENAI_API_KEY", "AWS_SECRET_ACCESS_KEY", "APIKEY"]
)
def test_env_refuses_names_that_look_like_secrets(name: str) -> None:
    with pytest.raises(DeclarationError, match="looks like a secret"):
        parse_mosaic(f'env = {{ {name} = "x" }}'.encode())


def test_env_refuses_secret_values_and_mosaic_own_names() -> None:
    with pytest.raises(DeclarationError, match="secret value"):
        parse_mosaic(b'env = { X = "sk-ant-api03-abcdefghijklmnop" }')
    with pytest.raises(DeclarationError, match="reserved"):
        parse_mosaic(b'env = { MOSAIC_SANDBOX = "none" }')


def test_env_accepts_ordinary_names_with_secret_looking_parts() -> None:
    decl = parse_mosaic(b'env = { TOKENIZERS_PARALLELISM = "false", GIT_AUTHOR_NAME = "x" }')
    assert set(decl.env) == {"TOKENIZERS_PARALLELISM", "GIT_AUTHOR_NAME"}


def test_jsonc_comments_and_trailing_commas_go_but_strings_stay() -> None:
    text = '{\n // a comment\n "a": "http://x//y", /* block */ "b": [1, 2,],\n}'
    assert strip_jsonc(text).replace(" ", "").replace("\n", "") == ('{"a":"http://x//y","b":[1,2]}')


def test_jsonc_comment_markers_inside_strings_are_kept() -> None:
    text = '{"a": "/* not a comment */", "b": "x // y", "c": "quote \\" // z", }'
    assert json.loads(strip_jsonc(text)) == {
        "a": "/* not a comment */",
        "b": "x // y",
        "c": 'quote " // z',
    }


DEVCONTAINER = b"""{
  // what VS Code reads
  "name": "demo",
  "build": { "dockerfile": "Dockerfile", "context": "..", "args": { "V": "1" } },
  "onCreateCommand": "echo one",
  "updateContentCommand": ["pip", "install", "a b"],
  "postCreateCommand": { "first": "echo two", "second": ["echo", "three"] },
  "containerEnv": { "APP_MODE": "${containerWorkspaceFolder}/x" },
  "remoteUser": "vscode",
  "customizations": { "vscode": { "extensions": ["ms-python.python"] } },
}"""


def test_devcontainer_subset() -> None:
    decl = parse_devcontainer(DEVCONTAINER)
    assert decl.source == DEVCONTAINER_FILE
    assert decl.dockerfile == ".devcontainer/Dockerfile"  # relative to .devcontainer/
    assert decl.context == "."  # ".." from .devcontainer/ is the repository root
    assert decl.args == {"V": "1"}
    assert decl.setup == ("echo one", "pip install 'a b'", "echo two", "echo three")
    assert decl.env == {"APP_MODE": "/workspace/x"}
    assert decl.user == "vscode"


def test_devcontainer_image_and_root_user() -> None:
    decl = parse_devcontainer(b'{"image": "mosaic/sandbox:latest", "remoteUser": "root"}')
    assert decl.image == "mosaic/sandbox:latest"
    assert decl.user is None  # never root: the image's non-root default is used
    assert decl.setup == ()


def test_devcontainer_features_are_refused_by_name() -> None:
    raw = b"""{"image": "x", "features": {
        "ghcr.io/devcontainers/features/node:1": {}, "ghcr.io/devcontainers/features/go:1": {}
    }}"""
    with pytest.raises(DeclarationError) as caught:
        parse_devcontainer(raw)
    message = caught.value.message
    assert f"{DEVCONTAINER_FILE}: features" in message
    assert "ghcr.io/devcontainers/features/node:1" in message
    assert "ghcr.io/devcontainers/features/go:1" in message
    assert "registry" in message


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"image": "x", "containerEnv": {"H": "${localEnv:HOME}"}}', "containerEnv.H"),
        (b'{"dockerComposeFile": "compose.yml", "service": "app"}', "dockerComposeFile"),
        (b'{"build": {"dockerfile": "../../Dockerfile"}}', "build.dockerfile"),
        (b'{"image": "x", "build": {"dockerfile": "Dockerfile"}}', "image, build.dockerfile"),
        (b'{"name": "nothing to build"}', "image"),
        (b'{"image": "x", "postCreateCommand": 3}', "postCreateCommand"),
        (b'{"image": "x", "containerEnv": {"GH_TOKEN": "x"}}', "containerEnv"),
        (b'{"image": "x",', "not valid JSON"),
    ],
)
def test_devcontainer_refusals_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        parse_devcontainer(raw)
    assert DEVCONTAINER_FILE in caught.value.message
    assert field in caught.value.message
