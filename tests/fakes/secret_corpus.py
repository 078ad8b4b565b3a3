"""A generated corpus of secrets and look-alikes for the scanner's recall and false blocks.

Every value is random (seeded, so runs compare), shaped like the documented format of
its provider; none is a real credential. Each secret is placed in the file formats where
it turns up in practice (.env, shell, Dockerfile, YAML, INI, TOML, JSON, Python, a file
with a NUL byte), unquoted and quoted. The look-alikes are what a repository full of
ordinary code contains: hashes, checksums, lockfile integrity strings, UUIDs,
placeholders, environment indirections, documented example keys, public keys and
certificates.
"""

from __future__ import annotations

import base64
import hashlib
import random
import string
import uuid
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "_-"
B64 = ALNUM + "+/"
DIGITS = string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class Sample:
    """One file: its name, its text, and the secret value it holds ("" for a look-alike)."""

    kind: str
    path: str
    text: str
    value: str


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    # Make sure mixed alphabets really mix (a value of only letters is a rare draw).
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        if (
            alphabet != ALNUM
            or n < 8
            or (any(c.isdigit() for c in value) and any(c.isupper() for c in value))
        ):
            return value


def _password(rng: random.Random) -> str:
    words = ["river", "Falcon", "orbit", "Maple", "quartz", "Tango", "ember", "Nova"]
    if rng.random() < 0.5:
        return (
            rng.choice(words) + str(rng.randint(10, 9999)) + rng.choice("!#%-_") + rng.choice(words)
        )
    return _s(rng, ALNUM, rng.randint(12, 24)) + rng.choice("!#%^*-_")


def _pem(rng: random.Random, label: str) -> str:
    body = base64.b64encode(rng.randbytes(300)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


def secret_values(rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, variable name, value) for each provider format."""
    r = rng
    return [
        (
            "aws-access-key-id",
            "AWS_ACCESS_KEY_ID",
            "AKIA" + _s(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
        ),
        (
            "aws-session-key-id",
            "AWS_ACCESS_KEY_ID",
            "ASIA" + _s(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16),
        ),
        (
            "aws-secret-key",
            "AWS_SECRET_ACCESS_KEY",
            _s(r, ALNUM, 30) + "/" + _s(r, ALNUM, 4) + "+" + _s(r, ALNUM, 4),
        ),
        ("aws-secret-alone", "SECRET", _s(r, ALNUM, 18) + "/" + _s(r, ALNUM, 21)),
        ("google-api-key", "GOOGLE_API_KEY", "AIza" + _s(r, URLSAFE, 35)),
        ("google-oauth-secret", "GOOGLE_CLIENT_SECRET", "GOCSPX-" + _s(r, URLSAFE, 28)),
        (
            "azure-storage-key",
            "AZURE_CONN",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
            + base64.b64encode(r.randbytes(64)).decode(),
        ),
        (
            "azure-client-secret",
            "AZURE_CLIENT_SECRET",
            _s(r, ALNUM, 3) + "8Q~" + _s(r, ALNUM + "_~.-", 34),
        ),
        ("digitalocean-token", "DO_TOKEN", "dop_v1_" + _s(r, HEX, 64)),
        ("github-pat-classic", "GH_TOKEN", "ghp_" + _s(r, ALNUM, 36)),
        ("github-oauth", "GITHUB_OAUTH", "gho_" + _s(r, ALNUM, 36)),
        ("github-app", "GITHUB_APP_TOKEN", "ghs_" + _s(r, ALNUM, 36)),
        (
            "github-fine-grained",
            "GITHUB_TOKEN",
            "github_pat_" + _s(r, ALNUM, 22) + "_" + _s(r, ALNUM, 59),
        ),
        ("gitlab-pat", "GITLAB_TOKEN", "glpat-" + _s(r, URLSAFE, 20)),
        ("npm-token", "NPM_TOKEN", "npm_" + _s(r, ALNUM, 36)),
        ("pypi-token", "PYPI_TOKEN", "pypi-AgEIcHlwaS5vcmc" + _s(r, URLSAFE, 70)),
        ("docker-hub-token", "DOCKER_TOKEN", "dckr_pat_" + _s(r, URLSAFE, 27)),
        (
            "slack-bot-token",
            "SLACK_TOKEN",
            f"xoxb-{r.randint(10**10, 10**11)}-{r.randint(10**10, 10**11)}-{_s(r, ALNUM, 24)}",
        ),
        (
            "slack-user-token",
            "SLACK_USER_TOKEN",
            f"xoxp-{_s(r, DIGITS, 11)}-{_s(r, DIGITS, 11)}-{_s(r, DIGITS, 12)}-{_s(r, HEX, 32)}",
        ),
        (
            "slack-webhook",
            "SLACK_WEBHOOK",
            f"https://hooks.slack.com/services/T{_s(r, UPPER_ALNUM, 10)}/B{_s(r, UPPER_ALNUM, 10)}/"
            + _s(r, ALNUM, 24),
        ),
        (
            "discord-bot-token",
            "DISCORD_TOKEN",
            "M" + _s(r, ALNUM, 25) + "." + _s(r, URLSAFE, 6) + "." + _s(r, URLSAFE, 38),
        ),
        (
            "discord-webhook",
            "DISCORD_WEBHOOK",
            f"https://discord.com/api/webhooks/{r.randint(10**17, 10**18)}/{_s(r, URLSAFE, 68)}",
        ),
        (
            "telegram-bot-token",
            "TELEGRAM_TOKEN",
            f"{r.randint(10**8, 10**9)}:AA{_s(r, URLSAFE, 33)}",
        ),
        ("stripe-live-key", "STRIPE_SECRET_KEY", "sk_live_" + _s(r, ALNUM, 24)),
        ("stripe-restricted", "STRIPE_KEY", "rk_live_" + _s(r, ALNUM, 24)),
        ("stripe-webhook", "STRIPE_WEBHOOK_SECRET", "whsec_" + _s(r, ALNUM, 32)),
        ("square-token", "SQUARE_TOKEN", "sq0atp-" + _s(r, URLSAFE, 22)),
        (
            "braintree-token",
            "BRAINTREE_TOKEN",
            f"access_token$production${_s(r, LOWER_ALNUM, 16)}${_s(r, HEX, 32)}",
        ),
        ("shopify-token", "SHOPIFY_TOKEN", "shpat_" + _s(r, HEX, 32)),
        ("sendgrid-key", "SENDGRID_API_KEY", "SG." + _s(r, URLSAFE, 22) + "." + _s(r, URLSAFE, 43)),
        ("mailgun-key", "MAILGUN_KEY", "key-" + _s(r, HEX, 32)),
        ("twilio-api-key", "TWILIO_KEY", "SK" + _s(r, HEX, 32)),
        ("anthropic-key", "ANTHROPIC_API_KEY", "sk-ant-api03-" + _s(r, URLSAFE, 93) + "AA"),
        (
            "openai-project-key",
            "OPENAI_API_KEY",
            "sk-proj-" + _s(r, URLSAFE, 48) + "T3BlbkFJ" + _s(r, URLSAFE, 48),
        ),
        ("openai-legacy-key", "OPENAI_KEY", "sk-" + _s(r, ALNUM, 48)),
        ("huggingface-token", "HF_TOKEN", "hf_" + _s(r, string.ascii_letters, 34)),
        ("groq-key", "GROQ_API_KEY", "gsk_" + _s(r, ALNUM, 52)),
        ("replicate-token", "REPLICATE_API_TOKEN", "r8_" + _s(r, ALNUM, 37)),
        (
            "jwt",
            "SESSION_JWT",
            "eyJhbGciOiJIUzI1NiJ9."
            + base64.urlsafe_b64encode(
                f'{{"sub":"{_s(r, ALNUM, 12)}","iat":{r.randint(10**9, 2 * 10**9)}}}'.encode()
            )
            .decode()
            .rstrip("=")
            + "."
            + _s(r, URLSAFE, 43),
        ),
        ("postgres-url", "DATABASE_URL", f"postgres://app:{_password(r)}@db.internal:5432/app"),
        ("mysql-url", "MYSQL_URL", f"mysql://root:{_password(r)}@mysql:3306/shop"),
        (
            "mongodb-url",
            "MONGO_URI",
            f"mongodb+srv://svc:{_password(r)}@cluster0.abcde.mongodb.net/prod",
        ),
        ("redis-url", "REDIS_URL", f"redis://default:{_password(r)}@cache:6379/0"),
        ("amqp-url", "BROKER_URL", f"amqp://worker:{_password(r)}@rabbit:5672/"),
        ("db-password", "DB_PASSWORD", _password(r)),
        ("password", "password", _password(r)),
        ("admin-password", "ADMIN_PASS", _password(r)),
        ("api-secret", "API_SECRET", _s(r, ALNUM, 32)),
        ("client-secret", "client_secret", _s(r, URLSAFE, 40)),
    ]


def _contexts(name: str, value: str) -> list[tuple[str, str]]:
    """(file name, text) for each place a secret is written in practice."""
    lower = name.lower()
    return [
        (".env", f"# settings\n{name}={value}\n"),
        ("deploy.sh", f"#!/bin/sh\nexport {name}={value}\n./run\n"),
        ("Dockerfile", f"FROM debian:12\nENV {name}={value}\nRUN make\n"),
        ("config.yaml", f"service:\n  {lower}: {value}\n"),
        ("settings.ini", f"[main]\n{lower} = {value}\n"),
        ("app.toml", f'[auth]\n{lower} = "{value}"\n'),
        ("config.json", f'{{"{lower}": "{value}"}}\n'),
        ("settings.py", f'{name.upper()} = "{value}"\n'),
        ("blob.dat", f"\x00\x01header\x00\n{name}={value}\n"),
    ]


# Values with no recognisable shape of their own: found only by the key they are assigned to.
KEYWORD_ONLY = frozenset(
    {"db-password", "password", "admin-password", "api-secret", "client-secret"}
)


def _bare(kind: str, value: str) -> list[tuple[str, str]]:
    """The value on its own, with no variable name to give it away."""
    if kind in KEYWORD_ONLY:
        return []
    return [("notes.md", f"temporary, use {value} until rotated\n")]


def secrets(seed: int = 18) -> list[Sample]:
    """Every secret format in every file format, plus private keys."""
    rng = random.Random(seed)
    samples = [
        Sample(kind, f"secret/{kind}/{i}/{path}", text, value)
        for kind, name, value in secret_values(rng)
        for i, (path, text) in enumerate(_contexts(name, value) + _bare(kind, value))
    ]
    for label in (
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ):
        pem = _pem(rng, label)
        value = pem.splitlines()[1]  # key material, which redaction must hide
        kind = "private-key-" + label.lower().replace(" ", "-")
        samples.append(Sample(kind, f"secret/{kind}/id_key", pem, value))
        escaped = pem.replace("\n", "\\n")
        samples.append(
            Sample(kind, f"secret/{kind}/sa.json", f'{{"private_key": "{escaped}"}}\n', value)
        )
    return samples


def lookalikes(seed: int = 18) -> list[Sample]:
    """Ordinary content that resembles secrets and must not block a commit."""
    rng = random.Random(seed + 1)
    out: list[Sample] = []

    def add(kind: str, path: str, text: str) -> None:
        out.append(Sample(kind, f"ok/{kind}/{len(out)}/{path}", text, ""))

    for _ in range(5):
        data = rng.randbytes(64)
        sha1, sha256 = hashlib.sha1(data).hexdigest(), hashlib.sha256(data).hexdigest()
        sha512 = base64.b64encode(hashlib.sha512(data).digest()).decode()
        add("git-sha", "notes.md", f"Fixed in commit {sha1}.\n")
        add("sha256", "SHA256SUMS", f"{sha256}  mosaic-1.2.3.tar.gz\n")
        add("checksum-var", "build.sh", f'CHECKSUM="{sha256}"\n')
        add("md5", "files.txt", f"md5: {hashlib.md5(data).hexdigest()}\n")
        add("npm-integrity", "package-lock.json", f'    "integrity": "sha512-{sha512}",\n')
        add("yarn-integrity", "yarn.lock", f"  integrity sha512-{sha512}\n")
        add("pip-hash", "requirements.txt", f"requests==2.32.3 --hash=sha256:{sha256}\n")
        add("uuid", "ids.py", f'REQUEST_ID = "{uuid.UUID(bytes=rng.randbytes(16))}"\n')
        add("docker-digest", "Dockerfile", f"FROM debian@sha256:{sha256}\n")
        add("password-hash", "users.yaml", f"password_hash: $2b$12${_s(rng, ALNUM + './', 53)}\n")
        add(
            "sri",
            "index.html",
            f'<script src="app.js" integrity="sha384-{_b64(rng.randbytes(48))}"></script>\n',
        )
        add(
            "go-sum",
            "go.sum",
            f"golang.org/x/text v0.3.7 h1:{_b64(hashlib.sha256(data).digest())}\n",
        )
    placeholders = [
        "changeme",
        "${DB_PASSWORD}",
        "<your-api-key>",
        "your_api_key_here",
        "xxxxxxxxxxxx",
        "CHANGE_ME",
        "<password>",
        "${SECRET:-}",
        "{{ .Values.token }}",
        "***",
        "...",
        "REDACTED",
        "dummy",
        "example-token",
        "$(cat /run/secrets/db)",
        "%(password)s",
    ]
    for value in placeholders:
        add("placeholder", ".env.example", f"DB_PASSWORD={value}\nAPI_KEY={value}\n")
        add("placeholder", "values.yaml", f"auth:\n  password: {value}\n  token: {value}\n")
    indirections = [
        ('password = os.environ["DB_PASSWORD"]\n', "db.py"),
        ('token = os.getenv("GITHUB_TOKEN")\n', "gh.py"),
        ("const apiKey = process.env.STRIPE_KEY;\n", "pay.js"),
        ("password: ${POSTGRES_PASSWORD}\n", "compose.yaml"),
        ("      - POSTGRES_PASSWORD_FILE=/run/secrets/db_password\n", "compose.yaml"),
        ("export GITHUB_TOKEN=$GH_TOKEN\n", "ci.sh"),
        ('ARG NPM_TOKEN\nRUN echo "//registry/:_authToken=${NPM_TOKEN}" > .npmrc\n', "Dockerfile"),
        ("password = settings.database_password\n", "app.py"),
        ("api_key = config.get('api_key')\n", "client.py"),
        ("secret: {{ secrets.DEPLOY_KEY }}\n", "workflow.yaml"),
        ("def check_password(password: str) -> bool:\n", "auth.py"),
        ("token_type = bearer\n", "oauth.ini"),
        ("password_min_length = 12\n", "policy.ini"),
        ("  secretKeyRef:\n    name: db\n    key: password\n", "deploy.yaml"),
        ('if token == "":\n    raise ValueError("no token")\n', "check.py"),
        ("AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n", "ci.yaml"),
        ("DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app\n", ".env.example"),
        ("url = https://user@git.example.com/repo.git\n", "gitconfig"),
    ]
    for text, path in indirections:
        add("indirection", path, text)
    documented = [
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        'stripe.api_key = "sk_test_EXAMPLEKEYexampleKEY000000"\n',
        "GITHUB_TOKEN=ghp_EXAMPLE\n",
        "API_KEY=<your-key>\n",
    ]
    for text in documented:
        add("documented-example", "README.md", text)
    for _ in range(4):
        key = base64.b64encode(rng.randbytes(279)).decode()
        add("ssh-public-key", "authorized_keys", f"ssh-rsa {key} dev@laptop\n")
        add(
            "ssh-ed25519-public",
            "id_ed25519.pub",
            f"ssh-ed25519 {base64.b64encode(rng.randbytes(51)).decode()} ci@host\n",
        )
        add("public-key-pem", "pub.pem", _pem(rng, "PUBLIC KEY"))
        add("certificate", "ca.crt", _pem(rng, "CERTIFICATE"))
    prose = [
        "Token rotation\n==============\n\nRotate the token every 90 days.\n",
        "The API key is read from `$API_KEY`; the password from a file.\n",
        "- password: see the team vault\n- token: ask an admin\n",
        "Set `GITHUB_TOKEN` (a fine-grained token with contents: write).\n",
        "Fix password: handle unicode in the reset form\n\nAgent: a1\n",
        "OAuth: switch to the PKCE flow; token: refresh before expiry\n",
        "author: jdoe42\nreviewers: [alice, bob]\n",
        "Credentials: stored in the operator's keychain, never in the repository.\n",
    ]
    for text in prose:
        add("prose", "docs/setup.md", text)
    add(
        "code",
        "util.py",
        "import hashlib\n\ndef digest(data: bytes) -> str:\n"
        "    return hashlib.sha256(data).hexdigest()\n",
    )
    add(
        "url",
        "links.md",
        "See https://docs.example.com/guide/setup#tokens and git@github.com:o/r.git\n",
    )
    add("version", "pyproject.toml", 'version = "1.4.2"\nrequires-python = ">=3.12"\n')
    return out
