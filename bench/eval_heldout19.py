"""Blind part ``heldout19``: a developer-tools SaaS startup, Quarryline Labs, with its open-source
CLI (Go) and SDKs in Python, Go, TypeScript, Rust, Java, Ruby and C#. Files are SDK sources,
tests and build config (pyproject, .pypirc, .npmrc, Cargo credentials and lockfiles, Gradle and
Maven settings, gem credentials, nuget.config and PowerShell publish scripts), the release
pipelines (GitHub Actions publishing to PyPI, npm, crates.io, Maven Central, NuGet and RubyGems,
GoReleaser, cosign/minisign/GPG signing keys, notarisation scripts, checksum files), the hosted API
(Go and Python services: config, Dockerfiles, Compose, migrations, HMAC signing, rate limiting,
Stripe billing and webhooks, Sentry and Segment clients), the docs site (Docusaurus and an older
MkDocs site, code samples in many languages, OpenAPI spec, translated docs and UI strings in
Japanese, German, Brazilian Portuguese and Simplified Chinese, Crowdin config), examples
repositories (Next.js, Flask, Spring, Rails, .NET, Rust, notebooks), integration tests (staging
configs, VCR cassettes, k6 scripts, fixtures), Terraform for AWS and Cloudflare (tfvars, state,
lock files, R2), Kubernetes manifests, Helm values and kubeconfigs, customer-support runbooks and
escalation notes, Slack and Discord community bots, chat exports, and engineers' dotfiles and
scratch notebooks. Written blind (without seeing the scanner, its rules or other parts'
templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt,
argon2, PBKDF2) and stored API-key digests, values encrypted at rest (SOPS, sealed secrets, AWS KMS
blobs, Rails credentials, Maven ``{...}`` passwords, age files, encrypted cosign keys), references
to environment variables and secret stores in every language and tool (Python, Go, TypeScript,
Rust, Java/Spring, Ruby, C#, shell, GitHub Actions, GoReleaser, Terraform, Kubernetes, 1Password),
placeholders, masked keys and redactions, public material (certificates, cosign and minisign public
keys, PGP public keys, SSH public keys, Stripe publishable keys, the DocSearch search-only key),
identifiers shaped like secrets (Stripe price and customer ids, Cloudflare zone and account ids,
ARNs, ULID key ids, Discord snowflakes, UUIDs, commit shas, image digests, lockfile and release
checksums), UI text about passwords and API keys, documented example credentials and credentials on
documentation hosts, and test values that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import zlib

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PW_SYMBOLS = "!#%*-_=+.@"
CRYPT64 = "./" + ALNUM
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Heldout19Values(evalset.Values):
    """Value generators of the heldout19 part; every name starts with ``h19_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "bedrock",
            "granite",
            "chisel",
            "gravel",
            "basalt",
            "slate",
            "flint",
            "marble",
            "boulder",
            "pickaxe",
            "sandstone",
            "obsidian",
            "shale",
            "cobble",
            "quarry",
        ]
        self.users = [
            "quarry_api",
            "usage_svc",
            "billing",
            "release-bot",
            "docs_ci",
            "support",
            "qline_admin",
            "metrics",
            "deployer",
            "ingest",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h19_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        out = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
        text = out.decode()
        return text if pad else text.rstrip("=")

    def h19_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h19_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h19_util_jwt_part(self, obj: dict[str, object]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def h19_util_pkcs8_pem(self) -> str:
        der = bytes.fromhex(
            "308204be020100300d06092a864886f70d0101010500048204a8308204a40201000282010100"
        )
        der += self.rng.randbytes(1218 - len(der))
        return self.h19_util_armor("PRIVATE KEY", der)

    def h19_util_pgp_crc(self) -> str:
        return base64.b64encode(self.rng.randbytes(3)).decode()

    # ------------------------------------------------------------------ positives: passwords
    def h19_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word}-{other}-{self.pick(self.words)}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Ql" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(self.rng.randrange(16, 25), ALNUM)
        leet = word.replace("a", "4").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "!" + self.s(3, DIGITS)

    def h19_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "quarry123",
                    "Quarryline1",
                    "hunter2",
                    "passw0rd",
                    "admin123",
                    "dev12345",
                    "Password1!",
                    "qwerty2024",
                    "letmein!",
                    "postgres1",
                ]
            )
        if shape == 1:
            return "Quarryline" + str(self.rng.randrange(2019, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "99"])
        return self.pick(["Summer", "Winter", "Spring", "Autumn"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h19_url_pw(self) -> str:
        if self.rng.randrange(2):
            return (
                self.pick(self.words).capitalize() + self.s(4, DIGITS) + self.pick(["", "x", "Q"])
            )
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(15, 26), ALNUM + "-_.~")

    def h19_intl_pw(self) -> str:
        shape = self.rng.randrange(5)
        year = str(self.rng.randrange(2019, 2026))
        if shape == 0:
            word = self.pick(["Steinbruch", "Kennwort", "Zugang", "Felsbrocken", "Meissel"])
            return word + year + self.pick(["!", "#", "?", "$"])
        if shape == 1:
            word = self.pick(["Pedreira", "Senha", "Granito", "Cascalho", "Rocha"])
            return word + "@" + year
        if shape == 2:
            word = self.pick(["ishikiri", "iwaba", "kakoujo", "sakura", "himitsu"])
            return word + "_" + self.s(4, DIGITS)
        if shape == 3:
            word = self.pick(["caishichang", "mima", "shitou", "kaifa", "ceshi"])
            return word + self.pick(["888", "666", "520", "2024", "123456"])
        return self.pick(["Cantera", "Contrasena", "Roca", "Cincel"]) + "." + self.s(5, DIGITS)

    def h19_de_pw(self) -> str:
        word = self.pick(["Steinbruch", "Kennwort", "Zugang", "Felsbrocken", "Meissel", "Schotter"])
        year = str(self.rng.randrange(2019, 2026))
        if self.rng.randrange(2):
            return word + year + self.pick(["!", "#", "?", "$"])
        return word.lower() + "-" + self.pick(["geheim", "sicher", "werkstatt"]) + self.s(2, DIGITS)

    def h19_pt_pw(self) -> str:
        word = self.pick(["Pedreira", "Senha", "Granito", "Cascalho", "Rocha", "Picareta"])
        if self.rng.randrange(2):
            return word + "@" + str(self.rng.randrange(2019, 2026))
        return word.lower() + self.pick(["123", "2024", "sp", "br"]) + self.pick(["!", "#", ""])

    def h19_apple_app_pw(self) -> str:
        return "-".join(self.s(4, string.ascii_lowercase) for _ in range(4))

    def h19_gpg_passphrase(self) -> str:
        words = [self.pick(self.words) for _ in range(4)]
        sep = self.pick([" ", "-", ".", "_"])
        return sep.join(words) + sep + self.s(3, DIGITS)

    def h19_k8s_b64_pw(self) -> str:
        return base64.b64encode(self.h19_pw().encode()).decode()

    def h19_basic(self) -> str:
        user = self.pick([*self.users, "quarryline-ci", "ql-robot"])
        return base64.b64encode(f"{user}:{self.h19_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: own tokens
    def h19_api_key(self) -> str:
        return self.pick(["qk_live_", "qk_live_", "qk_live_", "qk_admin_"]) + self.s(32, ALNUM)

    def h19_webhook_secret(self) -> str:
        return "qwhsec_" + self.s(40, URLSAFE)

    def h19_hex_secret(self) -> str:
        return self.s(64, HEX)

    def h19_hex32(self) -> str:
        return self.s(32, HEX)

    def h19_b64_secret(self) -> str:
        return self.h19_util_b64(self.pick([32, 32, 48, 64]))

    def h19_django_key(self) -> str:
        if self.rng.randrange(3) == 0:
            return "django-insecure-" + self.s(50, LOWNUM + "!@#%^&*(-_=+)")
        return self.s(50, LOWNUM + "!@#%^&*(-_=+)")

    def h19_jwt(self) -> str:
        header = self.h19_util_jwt_part({"alg": "HS256", "typ": "JWT"})
        iat = 1_700_000_000 + self.rng.randrange(40_000_000)
        payload = self.h19_util_jwt_part(
            {
                "sub": self.pick(["svc_usage", "svc_billing", "svc_docs_search", "ci_k6"]),
                "org": "org_" + self.s(14, LOWNUM),
                "scope": self.pick(["usage:write", "projects:read keys:read", "admin"]),
                "iat": iat,
                "exp": iat + self.pick([86_400 * 365, 86_400 * 30, 315_360_000]),
            }
        )
        return f"{header}.{payload}.{self.h19_util_b64(32, urlsafe=True, pad=False)}"

    def h19_k8s_token(self) -> str:
        header = self.h19_util_jwt_part(
            {"alg": "RS256", "kid": self.h19_util_b64(32, urlsafe=True, pad=False)}
        )
        ns = self.pick(["ci", "release", "api", "docs"])
        name = self.pick(["deployer", "github-actions", "argo-sync"])
        payload = self.h19_util_jwt_part(
            {
                "iss": "kubernetes/serviceaccount",
                "kubernetes.io/serviceaccount/namespace": ns,
                "kubernetes.io/serviceaccount/secret.name": f"{name}-token-{self.s(5, LOWNUM)}",
                "kubernetes.io/serviceaccount/service-account.name": name,
                "kubernetes.io/serviceaccount/service-account.uid": self.request_id(),
                "sub": f"system:serviceaccount:{ns}:{name}",
            }
        )
        return f"{header}.{payload}.{self.h19_util_b64(256, urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ positives: registries
    def h19_github(self) -> str:
        return self.h19_util_crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def h19_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h19_npm(self) -> str:
        return self.h19_util_crc_token("npm")

    def h19_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmcCJG" + self.s(self.rng.randrange(140, 170), URLSAFE)

    def h19_crates(self) -> str:
        return "cio" + self.s(32, ALNUM)

    def h19_nuget(self) -> str:
        return "oy2" + self.s(43, LOWNUM)

    def h19_rubygems(self) -> str:
        return "rubygems_" + self.s(48, HEX)

    def h19_sonatype_pw(self) -> str:
        return self.s(1, ALNUM) + self.s(43, ALNUM + "+/")

    def h19_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    # ------------------------------------------------------------------ positives: keys
    def h19_rsa_pem(self) -> str:
        der = bytes.fromhex("308204a40201000282010100") + self.rng.randbytes(1180)
        return self.h19_util_armor("RSA PRIVATE KEY", der)

    def h19_ec_pem(self) -> str:
        der = (
            bytes.fromhex("30770201010420")
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a144034200")
            + b"\x04"
            + self.rng.randbytes(64)
        )
        return self.h19_util_armor("EC PRIVATE KEY", der)

    def h19_openssh(self) -> str:
        def field(data: bytes) -> bytes:
            return len(data).to_bytes(4, "big") + data

        pub = self.rng.randbytes(32)
        pub_blob = field(b"ssh-ed25519") + field(pub)
        check = self.rng.randbytes(4)
        comment = f"{self.pick(['maya', 'tobias', 'ren', 'lucas', 'wen'])}@quarryline.dev".encode()
        priv = (
            check
            + check
            + field(b"ssh-ed25519")
            + field(pub)
            + field(self.rng.randbytes(32) + pub)
            + field(comment)
        )
        priv += bytes(range(1, 1 + (-len(priv) % 8)))
        blob = (
            b"openssh-key-v1\x00"
            + field(b"none")
            + field(b"none")
            + field(b"")
            + (1).to_bytes(4, "big")
            + field(pub_blob)
            + field(priv)
        )
        return self.h19_util_armor("OPENSSH PRIVATE KEY", blob, width=70)

    def h19_pgp_private(self) -> str:
        body = base64.b64encode(bytes([0x95, 0x07, 0x46, 0x04]) + self.rng.randbytes(1020)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={self.h19_util_pgp_crc()}\n-----END PGP PRIVATE KEY BLOCK-----"
        )

    def h19_b64_pem(self) -> str:
        return base64.b64encode((self.h19_util_pkcs8_pem() + "\n").encode()).decode()

    def h19_aws_ini_pair(self) -> str:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    # ------------------------------------------------------------------ positives: services
    def h19_cf_token(self) -> str:
        return self.s(40, URLSAFE)

    def h19_cf_global_key(self) -> str:
        return self.s(37, HEX)

    def h19_r2_secret(self) -> str:
        return self.s(64, HEX)

    def h19_sentry_token(self) -> str:
        if self.rng.randrange(3) == 0:
            return "sntryu_" + self.s(64, HEX)
        payload = {
            "iat": round(1_700_000_000 + self.rng.randrange(40_000_000) + self.rng.random(), 6),
            "url": "https://sentry.io",
            "region_url": "https://us.sentry.io",
            "org": "quarryline",
        }
        head = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
        return f"sntrys_{head}_{self.s(43, ALNUM + '+/')}"

    def h19_segment_token(self) -> str:
        return "sgp_" + self.s(64, ALNUM)

    def h19_stripe_sk(self) -> str:
        return "sk_live_51" + self.s(14, ALNUM) + self.s(84, ALNUM)

    def h19_stripe_rk(self) -> str:
        return "rk_live_51" + self.s(14, ALNUM) + self.s(84, ALNUM)

    def h19_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def h19_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h19_slack_signing(self) -> str:
        return self.s(32, HEX)

    def h19_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}"
            f"/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"
        )

    def h19_discord_bot(self) -> str:
        ident = str(self.rng.randrange(10**17, 10**19)).encode()
        head = base64.b64encode(ident).decode().rstrip("=")
        return f"{head}.{self.s(6, URLSAFE)}.{self.s(38, URLSAFE)}"

    def h19_discord_webhook(self) -> str:
        ident = self.rng.randrange(10**17, 10**19)
        return f"https://discord.com/api/webhooks/{ident}/{self.s(68, URLSAFE)}"

    def h19_crowdin(self) -> str:
        return self.s(80, HEX)

    def h19_zendesk_token(self) -> str:
        return self.s(40, ALNUM)

    def h19_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def h19_tfc_token(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def h19_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h19_algolia_admin(self) -> str:
        return self.s(32, HEX)

    # ------------------------------------------------------------------ negatives: refs
    def h19_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["QUARRYLINE_API_KEY"]',
                'os.getenv("QUARRYLINE_API_KEY")',
                '_read_env("QUARRYLINE_API_KEY")',
                'keyring.get_password("quarryline", "default")',
                'getpass.getpass("Quarryline API key: ")',
                "settings.QUARRYLINE_API_KEY",
            ]
        )

    def h19_py_db_ref(self) -> str:
        return self.pick(
            [
                'os.environ["USAGE_DB_PASSWORD"]',
                'os.getenv("USAGE_DB_PASSWORD", "")',
                'env.str("DATABASE_PASSWORD")',
                'get_secret("prod/usage/db")["password"]',
                'json.loads(boto3.client("secretsmanager").get_secret_value(SecretId="prod/usage/db")["SecretString"])["password"]',
            ]
        )

    def h19_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("QUARRYLINE_API_KEY")',
                "cfg.APIKey",
                'viper.GetString("quarryline.api_key")',
                'mustEnv("QUARRYLINE_API_KEY")',
                'strings.TrimSpace(os.Getenv("QUARRYLINE_API_KEY"))',
            ]
        )

    def h19_go_db_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("DB_PASSWORD")',
                "cfg.Password",
                'viper.GetString("database.password")',
                'mustEnv("DATABASE_PASSWORD")',
                'secrets.MustGet(ctx, "prod/api/db")',
            ]
        )

    def h19_ts_ref(self) -> str:
        return self.pick(
            [
                "process.env.QUARRYLINE_API_KEY",
                "process.env['QUARRYLINE_API_KEY']",
                "Core.readEnv('QUARRYLINE_API_KEY')",
                "process.env.QUARRYLINE_API_KEY!",
                "config.get<string>('quarryline.apiKey')",
            ]
        )

    def h19_rs_ref(self) -> str:
        return self.pick(
            [
                'std::env::var("QUARRYLINE_API_KEY")?',
                'env::var("QUARRYLINE_API_KEY").map_err(|_| Error::MissingApiKey)?',
                'dotenvy::var("QUARRYLINE_API_KEY")?',
            ]
        )

    def h19_gradle_ref(self) -> str:
        return self.pick(
            [
                'findProperty("ossrhPassword") as String?',
                'System.getenv("OSSRH_PASSWORD")',
                'providers.gradleProperty("ossrhPassword").orNull',
                'providers.environmentVariable("OSSRH_PASSWORD").orNull',
            ]
        )

    def h19_spring_ref(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${DB_PASSWORD:}",
                "${vault.quarry-demo.db-password}",
                "#{environment.DB_PASSWORD}",
            ]
        )

    def h19_rb_ref(self) -> str:
        return self.pick(
            [
                'ENV.fetch("QUARRYLINE_API_KEY", nil)',
                'ENV["QUARRYLINE_API_KEY"]',
                "Rails.application.credentials.dig(:quarryline, :api_key)",
            ]
        )

    def h19_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("QUARRYLINE_API_KEY")',
                'configuration["Quarryline:ApiKey"]',
                'Environment.GetEnvironmentVariable("QUARRYLINE_API_KEY", EnvironmentVariableTarget.Process)',
            ]
        )

    def h19_ci_pypi_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.PYPI_API_TOKEN }}",
                "${{ secrets.PYPI_TOKEN }}",
                "${{ steps.vault.outputs.pypi_token }}",
            ]
        )

    def h19_ci_cargo_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.CARGO_REGISTRY_TOKEN }}",
                "${{ secrets.CRATES_IO_TOKEN }}",
                "${{ steps.auth.outputs.token }}",
            ]
        )

    def h19_ci_gh_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.GITHUB_TOKEN }}",
                "${{ github.token }}",
                "${{ steps.app-token.outputs.token }}",
                "${{ secrets.L10N_BOT_PAT }}",
            ]
        )

    def h19_goreleaser_ref(self) -> str:
        return self.pick(
            [
                "{{ .Env.HOMEBREW_TAP_GITHUB_TOKEN }}",
                "{{ .Env.TAP_GITHUB_TOKEN }}",
                "{{ .Env.GITHUB_TOKEN }}",
            ]
        )

    def h19_tf_ref(self) -> str:
        return self.pick(
            [
                "random_password.usage_db.result",
                "var.usage_db_password",
                "data.aws_secretsmanager_secret_version.usage_db.secret_string",
                'jsondecode(data.aws_secretsmanager_secret_version.usage_db.secret_string)["password"]',
                "sensitive(var.usage_db_password)",
            ]
        )

    def h19_tf_cf_ref(self) -> str:
        return self.pick(
            [
                "var.cloudflare_api_token",
                "data.aws_ssm_parameter.cloudflare_api_token.value",
                "sensitive(var.cloudflare_api_token)",
                'data.vault_generic_secret.cloudflare.data["api_token"]',
            ]
        )

    def h19_k8s_ref(self) -> str:
        return self.pick(
            [
                "quarry-api-db",
                "quarry-api-db-credentials",
                "quarry-api-postgres",
                "api-secrets",
            ]
        )

    def h19_sh_ref(self) -> str:
        return self.pick(
            [
                '"$(op read op://Release/npm/token)"',
                '"${NPM_TOKEN:?NPM_TOKEN must be set}"',
                '"$(aws secretsmanager get-secret-value --secret-id release/npm --query SecretString --output text)"',
                '"$(security find-generic-password -s quarryline-npm -w)"',
                '"$(cat /run/secrets/npm_token)"',
                '"$(pass show quarryline/npm-token)"',
            ]
        )

    def h19_op_ref(self) -> str:
        return self.pick(
            [
                "op://Engineering/Quarryline Staging/api-key",
                "op://Private/Quarryline prod/credential",
                "op://Engineering/quarryline-cli/api_key",
                "op://Employee/Quarryline Admin Key/password",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h19_placeholder(self) -> str:
        return self.pick(
            [
                "<YOUR_API_KEY>",
                "qk_live_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "YOUR_QUARRYLINE_API_KEY",
                "<paste-your-key-here>",
                "${QUARRYLINE_API_KEY}",
                "REPLACE_ME",
                "qk_live_...",
                "<api-key>",
                "********",
                "{{ api_key }}",
                "your-api-key",
            ]
        )

    def h19_masked_key(self) -> str:
        tail = self.s(4, ALNUM)
        return self.pick(
            [
                f"qk_live_{'•' * 12}{tail}",
                f"qk_live_{'*' * 28}{tail}",
                f"qk_live_...{tail}",
                f"qk_admin_****{tail}",
                "[REDACTED]",
                "<redacted>",
            ]
        )

    def h19_fake_test(self) -> str:
        return self.pick(
            [
                "qk_test_FAKE_NOT_A_REAL_KEY_0000000",
                "fake-api-key-for-tests",
                "not-a-real-password",
                "dummy-webhook-secret",
                "test-token-do-not-use",
                "fake_" + "0" * 24,
                "FAKE-SIGNING-SECRET",
                "example-password-not-real",
                "qk_live_THIS_IS_A_FAKE_KEY_FOR_TESTS",
            ]
        )

    def h19_doc_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                "qk_live_EXAMPLE00000000000000000000000",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "ghp_EXAMPLEexampleEXAMPLEexampleEXAMPLE",
            ]
        )

    def h19_ql_doc_example(self) -> str:
        return self.pick(
            [
                "qk_live_EXAMPLE00000000000000000000000",
                "qk_test_00000000000000000000000000000000",
                "qk_live_1234567890abcdefEXAMPLEKEY",
                "qk_live_ExampleExampleExampleExample",
            ]
        )

    def h19_aws_doc_secret(self) -> str:
        return self.pick(
            [
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def h19_doc_host_pw(self) -> str:
        return self.pick(self.words) + self.s(4, DIGITS)

    # ------------------------------------------------------------------ negatives: hashes
    def h19_pw_hash(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "$2b$12$" + self.s(53, CRYPT64)
        if shape == 1:
            salt = self.h19_util_b64(16, pad=False)
            digest = self.h19_util_b64(32, pad=False)
            return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${digest}"
        return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self.h19_util_b64(32)}"

    def h19_key_hash(self) -> str:
        return hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def h19_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h19_sri(self) -> str:
        return "sha512-" + self.h19_util_b64(64)

    def h19_gosum(self) -> str:
        return "h1:" + self.h19_util_b64(32)

    def h19_commit_sha(self) -> str:
        return self.s(40, HEX)

    def h19_docker_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    # ------------------------------------------------------------------ negatives: encrypted
    def h19_sops(self) -> str:
        data = self.h19_util_b64(self.rng.randrange(12, 60))
        iv = self.h19_util_b64(32)
        tag = self.h19_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h19_sealed(self) -> str:
        return "AgB" + self.h19_util_b64(self.rng.randrange(360, 420)).lstrip("+/")

    def h19_kms_blob(self) -> str:
        return base64.b64encode(bytes([1, 2, 2, 0, 0x78]) + self.rng.randbytes(180)).decode()

    def h19_rails_enc(self) -> str:
        return f"{self.h19_util_b64(120)}--{self.h19_util_b64(12)}--{self.h19_util_b64(16)}"

    def h19_maven_enc(self) -> str:
        return "{" + self.h19_util_b64(32) + "}"

    def h19_encrypted_cosign(self) -> str:
        meta = {
            "kdf": {
                "name": "scrypt",
                "params": {"N": 65536, "r": 8, "p": 1},
                "salt": self.h19_util_b64(32),
            },
            "cipher": {"name": "nacl/secretbox", "nonce": self.h19_util_b64(24)},
            "ciphertext": self.h19_util_b64(156),
        }
        der = json.dumps(meta, separators=(",", ":")).encode()
        return self.h19_util_armor("ENCRYPTED SIGSTORE PRIVATE KEY", der)

    def h19_age_armor(self) -> str:
        raw = (
            b"age-encryption.org/v1\n-> X25519 "
            + base64.b64encode(self.rng.randbytes(32)).rstrip(b"=")
            + b"\n"
            + base64.b64encode(self.rng.randbytes(32)).rstrip(b"=")
            + b"\n--- "
            + base64.b64encode(self.rng.randbytes(32)).rstrip(b"=")
            + b"\n"
            + self.rng.randbytes(140)
        )
        return self.h19_util_armor("AGE ENCRYPTED FILE", raw)

    # ------------------------------------------------------------------ negatives: public
    def h19_public_pem(self) -> str:
        der = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04"
        return self.h19_util_armor("PUBLIC KEY", der + self.rng.randbytes(64))

    def h19_cert(self) -> str:
        der = bytes.fromhex("3082035a30820242a00302010202") + self.rng.randbytes(850)
        return self.h19_util_armor("CERTIFICATE", der)

    def h19_b64_cert(self) -> str:
        return base64.b64encode((self.h19_cert() + "\n").encode()).decode()

    def h19_pgp_public(self) -> str:
        body = base64.b64encode(bytes([0x98, 0x33, 0x04]) + self.rng.randbytes(560)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={self.h19_util_pgp_crc()}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def h19_ssh_pub(self) -> str:
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        who = self.pick(["maya", "tobias", "ren", "lucas", "wen", "priya"])
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {who}@quarryline.dev"

    def h19_minisign_pub(self) -> str:
        return base64.b64encode(b"Ed" + self.rng.randbytes(40)).decode()

    def h19_stripe_pk(self) -> str:
        return "pk_live_51" + self.s(14, ALNUM) + self.s(84, ALNUM)

    def h19_algolia_search(self) -> str:
        return self.s(32, HEX)

    # ------------------------------------------------------------------ negatives: identifiers
    def h19_uuid(self) -> str:
        return self.request_id()

    def h19_stripe_price(self) -> str:
        return "price_1" + self.s(23, ALNUM)

    def h19_stripe_cus(self) -> str:
        return "cus_" + self.s(14, ALNUM)

    def h19_cf_id(self) -> str:
        return self.s(32, HEX)

    def h19_aws_arn(self) -> str:
        account = self.s(12, DIGITS)
        return self.pick(
            [
                f"arn:aws:kms:us-east-1:{account}:key/{self.request_id()}",
                f"arn:aws:secretsmanager:us-east-1:{account}:secret:prod/api/db-{self.s(6, ALNUM)}",
                f"arn:aws:iam::{account}:role/github-actions-release",
                f"arn:aws:ssm:us-east-1:{account}:parameter/quarry/prod/stripe_secret_key",
            ]
        )

    def h19_discord_id(self) -> str:
        return str(self.rng.randrange(10**17, 2 * 10**18))

    def h19_ulid(self) -> str:
        body = "01H" + self.s(23, CROCKFORD)
        return self.pick(["key_", "req_", "org_", "prj_", ""]) + body

    # ------------------------------------------------------------------ negatives: text
    def h19_i18n_ja(self) -> str:
        return self.pick(
            [
                "APIキーを入力してください",
                "パスワードが正しくありません",
                "APIキーは一度しか表示されません。安全な場所に保存してください。",
                "シークレットをコードにハードコードしないでください",
                "パスワードは12文字以上にしてください",
                "トークンの有効期限が切れました",
            ]
        )

    def h19_i18n_de(self) -> str:
        return self.pick(
            [
                "API-Schlüssel ungültig",
                "Passwort vergessen?",
                "Der API-Schlüssel wird nur einmal angezeigt.",
                "Das Passwort muss mindestens 12 Zeichen lang sein",
                "Token abgelaufen. Bitte erneut anmelden.",
                "Geheimnisse niemals im Quellcode speichern",
            ]
        )

    def h19_i18n_pt(self) -> str:
        return self.pick(
            [
                "Chave de API inválida",
                "Esqueceu a senha?",
                "A senha deve ter pelo menos 12 caracteres",
                "Sua chave de API foi revogada",
                "Copie a chave agora: ela não será exibida novamente.",
                "Token expirado, faça login novamente",
            ]
        )

    def h19_i18n_zh(self) -> str:
        return self.pick(
            [
                "API 密钥无效",
                "忘记密码？",
                "密码长度至少为 12 个字符",
                "API 密钥只会显示一次，请妥善保存",
                "令牌已过期，请重新登录",
                "请勿将密钥提交到代码仓库",
            ]
        )

    def h19_ui_text(self) -> str:
        return self.pick(
            [
                "Your API key has been rotated",
                "Password must be at least 12 characters",
                "Paste your API key",
                "Invalid API key. Check that you copied the whole key.",
                "This key will only be shown once",
                "Secret key copied to clipboard",
                "Reset password",
            ]
        )

    def h19_error_code(self) -> str:
        return self.pick(
            [
                "invalid_api_key",
                "api_key_revoked",
                "QL-AUTH-401",
                "QL-AUTH-403",
                "password_too_weak",
                "token_expired",
                "signature_mismatch",
            ]
        )


VALUES = Heldout19Values


def _t(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    return (path, text.lstrip("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = [
    # ------------------------------------------------------------------ Python SDK
    _t(
        "quarryline-python/src/quarryline/_defaults.py",
        "h19_api_key",
        True,
        '''
"""Defaults for the Quarryline client. Do not import from outside the package."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.quarryline.dev/v1"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2

# TODO(maya): remove before 0.9 -- only here so `python -m quarryline whoami` works on my box
_DEV_FALLBACK_API_KEY = "{V}"

USER_AGENT = "quarryline-python/{version}"
''',
    ),
    _t(
        "quarryline-python/tests/conftest.py",
        "h19_fake_test",
        False,
        """
import pytest
import respx

from quarryline import Quarryline

FAKE_API_KEY = "{V}"
FAKE_WEBHOOK_SECRET = "{V2}"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Quarryline:
    monkeypatch.setenv("QUARRYLINE_API_KEY", FAKE_API_KEY)
    monkeypatch.delenv("QUARRYLINE_BASE_URL", raising=False)
    return Quarryline(base_url="http://localhost:4010")


@pytest.fixture
def mock_api():
    with respx.mock(base_url="http://localhost:4010", assert_all_called=False) as router:
        yield router
""",
    ),
    _t(
        "dotfiles/maya/.pypirc",
        "h19_pypi",
        True,
        """
[distutils]
index-servers =
    pypi
    testpypi

[pypi]
username = __token__
password = {V}

[testpypi]
repository = https://test.pypi.org/legacy/
username = __token__
password = {V2}
""",
    ),
    _t(
        "quarryline-python/README.md",
        "h19_placeholder",
        False,
        """
# quarryline-python

[![PyPI](https://img.shields.io/pypi/v/quarryline.svg)](https://pypi.org/project/quarryline/)

The official Python library for the [Quarryline](https://quarryline.dev) API.

## Installation

```sh
pip install quarryline
```

## Usage

```python
import os
from quarryline import Quarryline

client = Quarryline(
    api_key="{V}",  # defaults to os.environ["QUARRYLINE_API_KEY"]
)

project = client.projects.create(name="ingest-pipeline")
print(project.id)
```

Or set it once in your shell:

```sh
export QUARRYLINE_API_KEY="{V2}"
```
""",
    ),
    _t(
        "quarryline-python/src/quarryline/_client.py",
        "h19_py_ref",
        False,
        """
class Quarryline(SyncAPIClient):
    projects: resources.Projects
    keys: resources.Keys
    usage: resources.Usage

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: float | Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        if api_key is None:
            api_key = {V}
        if not api_key:
            raise QuarrylineError(
                "The api_key client option must be set either by passing api_key to the client "
                "or by setting the QUARRYLINE_API_KEY environment variable"
            )
        self.api_key = api_key
""",
    ),
    # ------------------------------------------------------------------ Go SDK and CLI
    _t(
        "quarryline-go/option/auth.go",
        "h19_go_ref",
        False,
        """
package option

import (
	"os"
)

// WithAPIKey sets the API key used to authenticate requests. If unset, the
// client reads QUARRYLINE_API_KEY from the environment.
func WithAPIKey(key string) RequestOption {
	return func(r *requestconfig.RequestConfig) error {
		r.APIKey = key
		return nil
	}
}

func defaultAPIKey() string {
	key := {V}
	if key == "" {
		key = os.Getenv("QL_API_KEY") // deprecated name, remove in v2
	}
	return key
}
""",
    ),
    _t(
        "quarryline-go/internal/testutil/server.go",
        "h19_fake_test",
        False,
        """
package testutil

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

const (
	FakeAPIKey        = "{V}"
	FakeWebhookSecret = "{V2}"
)

func NewServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+FakeAPIKey {
			http.Error(w, `{"error":{"code":"invalid_api_key"}}`, http.StatusUnauthorized)
			return
		}
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}
""",
    ),
    _t(
        "quarryline-go/examples/list-projects/main.go",
        "h19_api_key",
        True,
        """
package main

import (
	"context"
	"fmt"
	"log"

	"github.com/quarryline/quarryline-go"
	"github.com/quarryline/quarryline-go/option"
)

func main() {
	client := quarryline.NewClient(
		option.WithAPIKey("{V}"),
		option.WithBaseURL("https://api.staging.quarryline.dev/v1"),
	)
	iter := client.Projects.ListAutoPaging(context.TODO(), quarryline.ProjectListParams{})
	for iter.Next() {
		p := iter.Current()
		fmt.Printf("%s\\t%s\\n", p.ID, p.Name)
	}
	if err := iter.Err(); err != nil {
		log.Fatal(err)
	}
}
""",
    ),
    _t(
        "quarryline-cli/internal/config/keyring.go",
        "h19_go_ref",
        False,
        """
package config

import (
	"errors"
	"fmt"

	"github.com/zalando/go-keyring"
)

const service = "quarryline-cli"

// APIKey resolves the key for profile: flag > env > OS keyring > config file.
func (c *Config) APIKey(profile string) (string, error) {
	if c.flagKey != "" {
		return c.flagKey, nil
	}
	if v := {V}; v != "" {
		return v, nil
	}
	key, err := keyring.Get(service, profile)
	if errors.Is(err, keyring.ErrNotFound) {
		return "", fmt.Errorf("no API key for profile %q: run `quarryline login`", profile)
	}
	return key, err
}
""",
    ),
    _t(
        "quarryline-cli/testdata/golden/whoami.txt",
        "h19_masked_key",
        False,
        """
Profile:      default
Organization: Acme Geodata (org_01HQ2W9ZK8C4N6V0RTE5XG3M7B)
Key:          {V}
Key type:     secret (live)
Scopes:       projects:read projects:write keys:read usage:read
Created:      2024-02-11T09:14:52Z
Last used:    2024-06-03T17:40:01Z
""",
    ),
    _t(
        "quarryline-cli/internal/redact/redact_test.go",
        "h19_fake_test",
        False,
        """
package redact

import "testing"

func TestRedactHeaders(t *testing.T) {
	cases := []struct {
		in, want string
	}{
		{"Authorization: Bearer {V}", "Authorization: Bearer [REDACTED]"},
		{"X-Quarryline-Signature: {V2}", "X-Quarryline-Signature: [REDACTED]"},
		{"Content-Type: application/json", "Content-Type: application/json"},
	}
	for _, tc := range cases {
		if got := Line(tc.in); got != tc.want {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
""",
    ),
    _t(
        "quarryline-cli/CHANGELOG.md",
        "h19_commit_sha",
        False,
        """
# Changelog

## [1.14.0](https://github.com/quarryline/quarryline-cli/compare/v1.13.2...v1.14.0) (2024-06-04)

### Features

* **keys:** `quarryline keys rotate --grace 24h` ([{V}](https://github.com/quarryline/quarryline-cli/commit/{V}))
* **login:** store API keys in the OS keyring by default ([{V2}](https://github.com/quarryline/quarryline-cli/commit/{V2}))

### Bug Fixes

""",
    ),
    # ------------------------------------------------------------------ TypeScript SDK
    _t(
        "quarryline-node/.npmrc",
        "h19_npm",
        True,
        """
@quarryline:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
access=public
provenance=true
""",
    ),
    _t(
        "quarryline-node/src/index.ts",
        "h19_ts_ref",
        False,
        """
export interface ClientOptions {
  /** Defaults to process.env['QUARRYLINE_API_KEY']. */
  apiKey?: string | undefined;
  baseURL?: string | null | undefined;
  timeout?: number;
  maxRetries?: number;
}

export class Quarryline extends Core.APIClient {
  apiKey: string;

  constructor({
    apiKey = {V},
    baseURL = Core.readEnv('QUARRYLINE_BASE_URL'),
    ...opts
  }: ClientOptions = {}) {
    if (apiKey === undefined) {
      throw new Errors.QuarrylineError(
        "The QUARRYLINE_API_KEY environment variable is missing or empty; either provide it, or instantiate the Quarryline client with an apiKey option, like new Quarryline({ apiKey: 'My API Key' }).",
      );
    }
    super({ baseURL: baseURL || 'https://api.quarryline.dev/v1', ...opts });
    this.apiKey = apiKey;
  }
}
""",
    ),
    _t(
        "quarryline-node/package-lock.json",
        "h19_sri",
        False,
        """
{
  "name": "@quarryline/sdk",
  "version": "2.3.1",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/agentkeepalive": {
      "version": "4.5.0",
      "resolved": "https://registry.npmjs.org/agentkeepalive/-/agentkeepalive-4.5.0.tgz",
      "integrity": "{V}",
      "dependencies": {
        "humanize-ms": "^1.2.1"
      }
    },
    "node_modules/form-data-encoder": {
      "version": "1.7.2",
      "resolved": "https://registry.npmjs.org/form-data-encoder/-/form-data-encoder-1.7.2.tgz",
      "integrity": "{V2}"
    },
    "node_modules/node-fetch": {
      "version": "2.7.0",
      "resolved": "https://registry.npmjs.org/node-fetch/-/node-fetch-2.7.0.tgz"
    }
  }
}
""",
    ),
    _t(
        "quarryline-node/tests/api-resources/keys.test.ts",
        "h19_fake_test",
        False,
        """
import Quarryline from '@quarryline/sdk';
import { Response } from 'node-fetch';

const client = new Quarryline({
  apiKey: '{V}',
  baseURL: process.env['TEST_API_BASE_URL'] ?? 'http://127.0.0.1:4010',
});

describe('resource keys', () => {
  test('create: only required params', async () => {
    const responsePromise = client.keys.create({ name: 'ci' });
    const rawResponse = await responsePromise.asResponse();
    expect(rawResponse).toBeInstanceOf(Response);
  });
});
""",
    ),
    # ------------------------------------------------------------------ Rust SDK
    _t(
        "dotfiles/ren/.cargo/credentials.toml",
        "h19_crates",
        True,
        """
[registry]
token = "{V}"
""",
    ),
    _t(
        "quarryline-rs/src/auth.rs",
        "h19_rs_ref",
        False,
        """
use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

/// Credentials used by [`Client`](crate::Client).
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Reads `QUARRYLINE_API_KEY` from the environment.
    pub fn from_env() -> Result<Self, Error> {
        let raw = {V};
        Ok(Self(SecretString::from(raw)))
    }

    pub(crate) fn header_value(&self) -> String {
        format!("Bearer {}", self.0.expose_secret())
    }
}
""",
    ),
    _t(
        "quarryline-rs/Cargo.lock",
        "h19_sha256",
        False,
        """
# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 3

[[package]]
name = "reqwest"
version = "0.12.4"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"

[[package]]
name = "secrecy"
version = "0.8.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V2}"
""",
    ),
    _t(
        "quarryline-rs/examples/usage_report.rs",
        "h19_api_key",
        True,
        """
use quarryline::{Client, UsageQuery};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // staging org "ql-internal-demo"; swap for ApiKey::from_env() before publishing
    let client = Client::builder()
        .api_key("{V}")
        .base_url("https://api.staging.quarryline.dev/v1")
        .build()?;

    let report = client.usage().query(UsageQuery::last_days(7)).await?;
    for row in report.rows {
        println!("{:<24} {:>10}", row.project, row.requests);
    }
    Ok(())
}
""",
    ),
    # ------------------------------------------------------------------ Java SDK
    _t(
        "dotfiles/tobias/.gradle/gradle.properties",
        "h19_pw",
        True,
        """
org.gradle.jvmargs=-Xmx4g -XX:+UseParallelGC
org.gradle.caching=true

signing.keyId=5E3A91C2
signing.password={V}
signing.secretKeyRingFile=/Users/tobias/.gnupg/secring.gpg

ossrhUsername=quarryline
ossrhPassword={V2}
""",
    ),
    _t(
        "quarryline-java/build.gradle.kts",
        "h19_gradle_ref",
        False,
        """
plugins {
    `java-library`
    `maven-publish`
    signing
}

group = "dev.quarryline"
version = "0.11.2"

publishing {
    repositories {
        maven {
            name = "OSSRH"
            url = uri("https://s01.oss.sonatype.org/service/local/staging/deploy/maven2/")
            credentials {
                username = findProperty("ossrhUsername") as String? ?: System.getenv("OSSRH_USERNAME")
                password = {V}
            }
        }
    }
}

signing {
    val signingKey = providers.environmentVariable("SIGNING_KEY").orNull
    useInMemoryPgpKeys(signingKey, providers.environmentVariable("SIGNING_PASSWORD").orNull)
    sign(publishing.publications)
}
""",
    ),
    _t(
        "dotfiles/tobias/.m2/settings.xml",
        "h19_sonatype_pw",
        True,
        """
<?xml version="1.0" encoding="UTF-8"?>
<settings xmlns="http://maven.apache.org/SETTINGS/1.2.0"
          xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
          xsi:schemaLocation="http://maven.apache.org/SETTINGS/1.2.0 https://maven.apache.org/xsd/settings-1.2.0.xsd">
  <servers>
    <server>
      <!-- Central Portal user token, generated 2024-05-02 -->
      <id>central</id>
      <username>Xq7pLm2V</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
    ),
    _t(
        "quarryline-java/.mvn/settings-ci.xml",
        "h19_maven_enc",
        False,
        """
<settings>
  <servers>
    <server>
      <id>central</id>
      <username>Xq7pLm2V</username>
      <!-- encrypted with `mvn --encrypt-password`; master password lives in settings-security.xml on the runner -->
      <password>{V}</password>
    </server>
    <server>
      <id>github</id>
      <username>quarryline-bot</username>
      <password>{V2}</password>
    </server>
  </servers>
</settings>
""",
    ),
    _t(
        "quarryline-java/src/test/java/dev/quarryline/ClientTest.java",
        "h19_fake_test",
        False,
        """
package dev.quarryline;

import static org.assertj.core.api.Assertions.assertThat;

import okhttp3.mockwebserver.MockResponse;
import okhttp3.mockwebserver.MockWebServer;
import org.junit.jupiter.api.Test;

class ClientTest {
    private static final String API_KEY = "{V}";

    @Test
    void sendsBearerToken() throws Exception {
        try (MockWebServer server = new MockWebServer()) {
            server.enqueue(new MockResponse().setBody("{\\"data\\":[]}"));
            QuarrylineClient client = QuarrylineClient.builder()
                .apiKey(API_KEY)
                .baseUrl(server.url("/v1").toString())
                .build();
            client.projects().list();
            assertThat(server.takeRequest().getHeader("Authorization")).isEqualTo("Bearer " + API_KEY);
        }
    }
}
""",
    ),
    _t(
        "examples/java-spring-boot/src/main/resources/application-local.properties",
        "h19_pw",
        True,
        """
spring.datasource.url=jdbc:postgresql://localhost:5432/quarry_demo
spring.datasource.username=quarry_demo
spring.datasource.password={V}
spring.jpa.hibernate.ddl-auto=update

quarryline.base-url=https://api.staging.quarryline.dev/v1
quarryline.webhook.signing-secret={V2}
""",
    ),
    _t(
        "examples/java-spring-boot/src/main/resources/application.yml",
        "h19_spring_ref",
        False,
        """
spring:
  datasource:
    url: jdbc:postgresql://${DB_HOST:localhost}:5432/quarry_demo
    username: ${DB_USER:quarry_demo}
    password: "{V}"
quarryline:
  api-key: "${QUARRYLINE_API_KEY}"
  base-url: https://api.quarryline.dev/v1
management:
  endpoints:
    web:
      exposure:
        include: health,info
""",
    ),
    # ------------------------------------------------------------------ Ruby SDK
    _t(
        "dotfiles/lucas/.gem/credentials",
        "h19_rubygems",
        True,
        """
---
:rubygems_api_key: {V}
""",
    ),
    _t(
        "quarryline-ruby/lib/quarryline/configuration.rb",
        "h19_rb_ref",
        False,
        """
# frozen_string_literal: true

module Quarryline
  class Configuration
    attr_accessor :api_key, :base_url, :open_timeout, :read_timeout, :max_retries

    def initialize
      @api_key = {V}
      @base_url = ENV.fetch("QUARRYLINE_BASE_URL", "https://api.quarryline.dev/v1")
      @open_timeout = 10
      @read_timeout = 60
      @max_retries = 2
    end
  end
end
""",
    ),
    _t(
        "quarryline-ruby/spec/spec_helper.rb",
        "h19_fake_test",
        False,
        """
# frozen_string_literal: true

require "quarryline"
require "webmock/rspec"

RSpec.configure do |config|
  config.before do
    Quarryline.configure do |c|
      c.api_key = "{V}"
      c.base_url = "https://api.quarryline.test/v1"
    end
  end
end
""",
    ),
    _t(
        "examples/rails-demo/config/master.key",
        "h19_hex32",
        True,
        """
{V}
""",
    ),
    _t(
        "examples/rails-demo/config/credentials.yml.enc",
        "h19_rails_enc",
        False,
        """
{V}
""",
    ),
    # ------------------------------------------------------------------ .NET SDK
    _t(
        "quarryline-dotnet/nuget.config",
        "h19_github",
        True,
        """
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
    <add key="github" value="https://nuget.pkg.github.com/quarryline/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <github>
      <add key="Username" value="quarryline-bot" />
      <add key="ClearTextPassword" value="{V}" />
    </github>
  </packageSourceCredentials>
</configuration>
""",
    ),
    _t(
        "quarryline-dotnet/build/Publish.ps1",
        "h19_nuget",
        True,
        """
param(
    [string]$Configuration = "Release",
    [string]$Version = (Select-Xml -Path "src/Quarryline/Quarryline.csproj" -XPath "//Version").Node.InnerText
)

$ErrorActionPreference = "Stop"
dotnet pack src/Quarryline/Quarryline.csproj -c $Configuration -o artifacts /p:ContinuousIntegrationBuild=true

# nuget.org key scoped to Quarryline.* (push only), expires 2025-03-01
$NuGetApiKey = "{V}"
dotnet nuget push "artifacts/Quarryline.$Version.nupkg" --api-key $NuGetApiKey --source https://api.nuget.org/v3/index.json --skip-duplicate
""",
    ),
    _t(
        "quarryline-dotnet/src/Quarryline/QuarrylineClientOptions.cs",
        "h19_cs_ref",
        False,
        """
namespace Quarryline;

public sealed class QuarrylineClientOptions
{
    public string? ApiKey { get; set; }
    public Uri BaseAddress { get; set; } = new("https://api.quarryline.dev/v1/");
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(60);

    internal string ResolveApiKey()
    {
        var key = ApiKey ?? {V};
        if (string.IsNullOrWhiteSpace(key))
        {
            throw new QuarrylineException("Set QuarrylineClientOptions.ApiKey or the QUARRYLINE_API_KEY environment variable.");
        }
        return key;
    }
}
""",
    ),
    _t(
        "examples/dotnet-console/appsettings.Development.json",
        "h19_api_key",
        True,
        """
{
  "Logging": {
    "LogLevel": {
      "Default": "Information",
      "Microsoft.AspNetCore": "Warning"
    }
  },
  "Quarryline": {
    "ApiKey": "{V}",
    "AdminKey": "{V2}",
    "BaseUrl": "https://api.staging.quarryline.dev/v1"
  }
}
""",
    ),
    _t(
        "examples/dotnet-console/Program.cs",
        "h19_pw",
        True,
        """
using Npgsql;
using Quarryline;

var connString = "Host=ql-demo.cxq8w2m1v0ab.us-east-1.rds.amazonaws.com;Port=5432;Database=demo;Username=demo_app;Password={V};SSL Mode=Require";

await using var dataSource = NpgsqlDataSource.Create(connString);
var client = new QuarrylineClient(new QuarrylineClientOptions
{
    ApiKey = Environment.GetEnvironmentVariable("QUARRYLINE_API_KEY"),
});

await foreach (var project in client.Projects.ListAsync())
{
    await using var cmd = dataSource.CreateCommand("INSERT INTO projects(id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING");
    cmd.Parameters.AddWithValue(project.Id);
    cmd.Parameters.AddWithValue(project.Name);
    await cmd.ExecuteNonQueryAsync();
}
""",
    ),
    # ------------------------------------------------------------------ release pipelines
    _t(
        ".github/workflows/release-python.yml",
        "h19_ci_pypi_ref",
        False,
        """
name: release-python

on:
  push:
    tags: ["python-v*"]

permissions:
  contents: read
  id-token: write

jobs:
  publish:
    runs-on: ubuntu-latest
    environment: pypi
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: pipx run build
        working-directory: quarryline-python
      - name: Publish to PyPI
        uses: pypa/gh-action-pypi-publish@release/v1
        with:
          packages-dir: quarryline-python/dist
          password: {V}
      - name: Notify #releases
        run: ./scripts/notify-release.sh python "${GITHUB_REF_NAME}"
        env:
          GH_TOKEN: ${{ github.token }}
""",
    ),
    _t(
        ".github/workflows/release-node.yml",
        "h19_npm",
        True,
        """
name: release-node

on:
  workflow_dispatch:
  push:
    tags: ["node-v*"]

jobs:
  publish:
    runs-on: ubuntu-latest
    permissions:
      contents: read
      id-token: write
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 20
          registry-url: https://registry.npmjs.org
      - run: npm ci && npm run build
        working-directory: quarryline-node
      - run: npm publish --provenance --access public
        working-directory: quarryline-node
        env:
          # TEMP: org secret broke after the npm granular-token migration, hardcoding until fixed
          NODE_AUTH_TOKEN: {V}
""",
    ),
    _t(
        ".github/workflows/release-rust.yml",
        "h19_ci_cargo_ref",
        False,
        """
name: release-rust
on:
  push:
    tags: ["rs-v*"]
jobs:
  publish:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: dtolnay/rust-toolchain@stable
      - run: cargo publish --locked -p quarryline
        env:
          CARGO_REGISTRY_TOKEN: {V}
  publish-dotnet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-dotnet@v4
        with:
          dotnet-version: 8.0.x
      - run: dotnet pack -c Release -o out quarryline-dotnet/src/Quarryline
      - run: dotnet nuget push "out/*.nupkg" --api-key ${{ secrets.NUGET_API_KEY }} --source https://api.nuget.org/v3/index.json
""",
    ),
    _t(
        ".github/workflows/integration.yml",
        "h19_api_key",
        True,
        """
name: integration

on:
  schedule:
    - cron: "17 */6 * * *"
  workflow_dispatch:

jobs:
  sdk-matrix:
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      matrix:
        sdk: [python, node, go, rust, java, ruby, dotnet]
    env:
      QUARRYLINE_BASE_URL: https://api.staging.quarryline.dev/v1
      QUARRYLINE_API_KEY: {V}
      QUARRYLINE_ADMIN_KEY: {V2}
    steps:
      - uses: actions/checkout@v4
      - run: ./integration-tests/run.sh ${{ matrix.sdk }}
""",
    ),
    _t(
        ".github/workflows/release-ruby.yml",
        "h19_rubygems",
        True,
        """
name: release-ruby
on:
  push:
    tags: ["rb-v*"]
jobs:
  gem:
    runs-on: ubuntu-latest
    defaults:
      run:
        working-directory: quarryline-ruby
    steps:
      - uses: actions/checkout@v4
      - uses: ruby/setup-ruby@v1
        with:
          ruby-version: "3.3"
          bundler-cache: true
      - run: gem build quarryline.gemspec
      - run: |
          mkdir -p ~/.gem
          printf -- "---\\n:rubygems_api_key: %s\\n" "{V}" > ~/.gem/credentials
          chmod 0600 ~/.gem/credentials
          gem push quarryline-*.gem
""",
    ),
    _t(
        "release/signing/quarryline-release-2024.asc",
        "h19_pgp_private",
        True,
        """
# Quarryline release signing key (2024). Exported with:
#   gpg --armor --export-secret-keys releases@quarryline.dev
# Passphrase is in the Release vault.
{V}
""",
    ),
    _t(
        "release/signing/KEYS",
        "h19_pgp_public",
        False,
        """
This file contains the PGP keys used to sign Quarryline CLI and SDK releases.

Users:
    gpg --import KEYS
    gpg --verify quarryline_1.14.0_checksums.txt.sig quarryline_1.14.0_checksums.txt

pub   ed25519 2024-01-08 [SC] [expires: 2026-01-07]
      9F3B2C71D04E8A55B61C3E0F7A2D19C84E6B0A13
uid           [ultimate] Quarryline Releases <releases@quarryline.dev>

{V}
""",
    ),
    _t(
        "quarryline-cli/cosign.key",
        "h19_encrypted_cosign",
        False,
        """
{V}
""",
    ),
    _t(
        "quarryline-cli/cosign.pub",
        "h19_public_pem",
        False,
        """
{V}
""",
    ),
    _t(
        "release/.env.release",
        "h19_gpg_passphrase",
        True,
        """
# sourced by scripts/release.sh on the release laptop -- NOT committed (famous last words)
GPG_KEY_ID=9F3B2C71D04E8A55B61C3E0F7A2D19C84E6B0A13
GPG_PASSPHRASE="{V}"
COSIGN_PASSWORD="{V2}"
GORELEASER_CURRENT_TAG=v1.14.0
""",
    ),
    _t(
        "release/dist/quarryline_1.14.0_checksums.txt",
        "h19_sha256",
        False,
        """
{V}  quarryline_1.14.0_darwin_amd64.tar.gz
{V2}  quarryline_1.14.0_darwin_arm64.tar.gz
{V3}  quarryline_1.14.0_linux_amd64.tar.gz
""",
    ),
    _t(
        "quarryline-cli/.goreleaser.yaml",
        "h19_goreleaser_ref",
        False,
        """
version: 2
project_name: quarryline

builds:
  - main: ./cmd/quarryline
    env: [CGO_ENABLED=0]
    goos: [linux, darwin, windows]
    goarch: [amd64, arm64]
    ldflags:
      - -s -w -X main.version={{.Version}} -X main.commit={{.Commit}}

signs:
  - cmd: cosign
    stdin: "{{ .Env.COSIGN_PASSWORD }}"
    args: ["sign-blob", "--key=cosign.key", "--output-signature=${signature}", "${artifact}", "--yes"]
    artifacts: checksum

brews:
  - repository:
      owner: quarryline
      name: homebrew-tap
      token: "{V}"
    homepage: https://quarryline.dev
    description: Quarryline command-line interface
""",
    ),
    _t(
        "release/scripts/notarize.sh",
        "h19_apple_app_pw",
        True,
        """
#!/usr/bin/env bash
# Notarize the macOS universal binary. Run from the repo root after `goreleaser release`.
set -euo pipefail

APPLE_ID="releases@quarryline.dev"
TEAM_ID="7QX2M4L9KD"
APP_PASSWORD="{V}"   # app-specific password for releases@ (appleid.apple.com)

ditto -c -k --keepParent dist/quarryline_darwin_all/quarryline dist/quarryline-macos.zip
xcrun notarytool submit dist/quarryline-macos.zip \\
  --apple-id "$APPLE_ID" --team-id "$TEAM_ID" --password "$APP_PASSWORD" --wait
""",
    ),
    _t(
        "release/scripts/publish-all.sh",
        "h19_sh_ref",
        False,
        """
#!/usr/bin/env bash
set -euo pipefail

NPM_TOKEN={V}
export NPM_TOKEN
NUGET_API_KEY="$(op read op://Release/NuGet/api-key)"

echo "//registry.npmjs.org/:_authToken=${NPM_TOKEN}" > quarryline-node/.npmrc
(cd quarryline-node && npm publish --access public)
dotnet nuget push "artifacts/*.nupkg" --api-key "$NUGET_API_KEY" --source nuget.org
rm -f quarryline-node/.npmrc
""",
    ),
    _t(
        "release/minisign.pub",
        "h19_minisign_pub",
        False,
        """
untrusted comment: minisign public key 3A8C55E1F0B2D947
{V}
""",
    ),
    _t(
        "dotfiles/wen/.ssh/id_ed25519",
        "h19_openssh",
        True,
        """
{V}
""",
    ),
    _t(
        "dotfiles/wen/.ssh/authorized_keys",
        "h19_ssh_pub",
        False,
        """
{V}
{V2}
""",
    ),
    _t(
        "release/deploy-keys/homebrew-tap-deploy",
        "h19_ec_pem",
        True,
        """
{V}
""",
    ),
    _t(
        "community-bot/keys/quarrybot.2024-05-01.private-key.pem",
        "h19_rsa_pem",
        True,
        """
{V}
""",
    ),
    _t(
        "quarryline-java/.github/workflows/publish.yml",
        "h19_pgp_private",
        True,
        """
name: publish-maven
on:
  release:
    types: [published]
jobs:
  publish:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-java@v4
        with:
          distribution: temurin
          java-version: "17"
      - name: Write signing key
        run: |
          cat > /tmp/signing.asc <<'EOF'
          {IV}
          EOF
      - run: ./gradlew publishToSonatype closeAndReleaseSonatypeStagingRepository
        env:
          ORG_GRADLE_PROJECT_signingKey: /tmp/signing.asc
""",
    ),
    # ------------------------------------------------------------------ hosted API (Go)
    _t(
        "quarry-api/config/staging.yaml",
        "h19_url_pw",
        True,
        """
server:
  addr: ":8080"
  read_timeout: 15s
  write_timeout: 30s

database:
  dsn: "postgres://quarry_api:{V}@quarry-staging.cluster-c9x2q1r8m0ab.us-east-1.rds.amazonaws.com:5432/quarry?sslmode=require"
  max_open_conns: 40

redis:
  url: "rediss://default:{V2}@quarry-staging-redis.k1x9ab.ng.0001.use1.cache.amazonaws.com:6379/0"

smtp:
  url: "smtp://apikey:{V3}@smtp.postmarkapp.com:587"

ratelimit:
  default_rps: 25
  burst: 50
""",
    ),
    _t(
        "quarry-api/internal/db/db.go",
        "h19_go_db_ref",
        False,
        """
package db

import (
	"context"
	"fmt"
	"net/url"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
)

func Open(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	password := {V}
	dsn := fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=%s",
		cfg.User, url.QueryEscape(password), cfg.Host, cfg.Port, cfg.Name, cfg.SSLMode)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("db: open: %w", err)
	}
	return pool, nil
}
""",
    ),
    _t(
        "quarry-api/internal/webhooks/sign.go",
        "h19_hex_secret",
        True,
        """
package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// fallbackSecret is used for orgs created before per-endpoint secrets (QL-812).
// Keep in sync with usage-service/app/webhooks.py.
var fallbackSecret = []byte("{V}")

func Sign(secret []byte, ts time.Time, body []byte) string {
	if len(secret) == 0 {
		secret = fallbackSecret
	}
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%d.", ts.Unix())
	mac.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", ts.Unix(), hex.EncodeToString(mac.Sum(nil)))
}
""",
    ),
    _t(
        "quarry-api/internal/webhooks/sign_test.go",
        "h19_fake_test",
        False,
        """
package webhooks

import (
	"testing"
	"time"
)

func TestSignIsStable(t *testing.T) {
	secret := []byte("{V}")
	ts := time.Unix(1717171717, 0)
	got := Sign(secret, ts, []byte(`{"type":"project.created"}`))
	if got[:13] != "t=1717171717," {
		t.Fatalf("unexpected prefix: %s", got)
	}
}
""",
    ),
    _t(
        "quarry-api/migrations/0007_api_keys.up.sql",
        "h19_key_hash",
        False,
        """
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,            -- first 12 chars, shown in the dashboard
    key_hash     CHAR(64) NOT NULL UNIQUE, -- sha256(secret), the secret itself is never stored
    scopes       TEXT[] NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at   TIMESTAMPTZ
);

-- seed keys for the local dev org (secrets are in docs/internal/dev-setup.md)
INSERT INTO api_keys (id, org_id, name, prefix, key_hash, scopes) VALUES
  ('key_01HQ7X3D0Y5B8M2N4P6R9T1V3W', 'org_dev', 'dev-admin', 'qk_admin_7Hs', '{V}', '{admin}'),
  ('key_01HQ7X3D0Y5B8M2N4P6R9T1V3X', 'org_dev', 'dev-readonly', 'qk_live_Q2mf', '{V2}', '{projects:read}');
""",
    ),
    _t(
        "quarry-api/internal/billing/stripe.go",
        "h19_stripe_sk",
        True,
        """
package billing

import (
	"github.com/stripe/stripe-go/v78"
	"github.com/stripe/stripe-go/v78/client"
)

// NewClient returns a Stripe client. The key below is the live secret key
// key from the Stripe dashboard ("quarry-api prod"); rotate via runbooks/stripe.md.
func NewClient() *client.API {
	sc := &client.API{}
	sc.Init("{V}", nil)
	stripe.SetAppInfo(&stripe.AppInfo{Name: "quarry-api", URL: "https://quarryline.dev"})
	return sc
}
""",
    ),
    _t(
        "quarry-api/internal/billing/webhook_test.go",
        "h19_doc_example",
        False,
        """
package billing

import "testing"

// Credentials copied from vendor documentation; the redaction tests must leave them alone,
// and nothing here works against a real account.
var docsCredentials = []string{
	"{V}",
	"{V2}",
}

func TestParseEvent(t *testing.T) {
	evt, err := parseFixture(t, "testdata/invoice.paid.json")
	if err != nil {
		t.Fatal(err)
	}
	if evt.Type != "invoice.paid" {
		t.Fatalf("type = %s", evt.Type)
	}
	for _, c := range docsCredentials {
		if redact(c) != c {
			t.Errorf("redact(%q) changed a documented example", c)
		}
	}
}
""",
    ),
    _t(
        "quarry-api/.env",
        "h19_pw",
        True,
        """
APP_ENV=development
HTTP_ADDR=:8080
DB_HOST=localhost
DB_USER=quarry
DB_PASSWORD={V}
REDIS_PASSWORD={V2}
ADMIN_BOOTSTRAP_PASSWORD={V3}
LOG_LEVEL=debug
""",
    ),
    _t(
        "quarry-api/.env.example",
        "h19_placeholder",
        False,
        """
APP_ENV=development
HTTP_ADDR=:8080
DATABASE_URL=postgres://quarry:<password>@localhost:5432/quarry?sslmode=disable
BOOTSTRAP_ADMIN_KEY={V}
STRIPE_SECRET_KEY=
LOG_LEVEL=debug
""",
    ),
    _t(
        "quarry-api/docker-compose.yml",
        "h19_weak_pw",
        True,
        """
services:
  postgres:
    image: postgres:16-alpine
    environment:
      POSTGRES_USER: quarry
      POSTGRES_PASSWORD: {V}
      POSTGRES_DB: quarry
    ports: ["5432:5432"]
    volumes: ["pgdata:/var/lib/postgresql/data"]

  redis:
    image: redis:7-alpine
    command: ["redis-server", "--requirepass", "{V2}"]
    ports: ["6379:6379"]

  api:
    build: .
    environment:
      DATABASE_URL: postgres://quarry:{V}@postgres:5432/quarry?sslmode=disable
      REDIS_URL: redis://:{V2}@redis:6379/0
    depends_on: [postgres, redis]

volumes:
  pgdata: {}
""",
    ),
    _t(
        "quarry-api/Dockerfile",
        "h19_github",
        True,
        """
# syntax=docker/dockerfile:1.6
FROM golang:1.22-alpine AS build
WORKDIR /src
RUN apk add --no-cache git ca-certificates
ENV GOPRIVATE=github.com/quarryline/*
RUN git config --global url."https://x-access-token:{V}@github.com/quarryline/".insteadOf "https://github.com/quarryline/"
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/quarry-api ./cmd/quarry-api

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/quarry-api /quarry-api
ENTRYPOINT ["/quarry-api"]
""",
    ),
    _t(
        "quarry-api/internal/ratelimit/redis.go",
        "h19_pw",
        True,
        """
package ratelimit

import (
	"github.com/redis/go-redis/v9"
)

func newRedis(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:     addr,
		Username: "ratelimit",
		Password: "{V}", // ACL user from elasticache, see infra/terraform/aws/redis.tf
		DB:       2,
		PoolSize: 64,
	})
}
""",
    ),
    _t(
        "quarry-api/go.sum",
        "h19_gosum",
        False,
        """
github.com/jackc/pgx/v5 v5.5.5 {V}
github.com/jackc/pgx/v5 v5.5.5/go.mod {V2}
""",
    ),
    _t(
        "quarry-api/internal/auth/session.go",
        "h19_b64_secret",
        True,
        """
package auth

import (
	"encoding/base64"

	"github.com/gorilla/securecookie"
)

// Dashboard session cookies. hashKey authenticates, blockKey encrypts.
var (
	hashKey, _  = base64.StdEncoding.DecodeString("{V}")
	blockKey, _ = base64.StdEncoding.DecodeString("{V2}")
	codec       = securecookie.New(hashKey, blockKey)
)
""",
    ),
    _t(
        "quarry-api/internal/auth/errors.go",
        "h19_error_code",
        False,
        """
package auth

import "net/http"

var (
	ErrUnauthorized = &APIError{Status: http.StatusUnauthorized, Code: "{V}", Message: "Authentication failed. See https://docs.quarryline.dev/errors"}
	ErrForbidden    = &APIError{Status: http.StatusForbidden, Code: "insufficient_scope", Message: "This key lacks the required scope."}
)
""",
    ),
    # ------------------------------------------------------------------ hosted API (Python)
    _t(
        "usage-service/usage/settings/base.py",
        "h19_django_key",
        True,
        """
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# SECURITY WARNING: keep the secret key used in production secret!
SECRET_KEY = "{V}"

DEBUG = False
ALLOWED_HOSTS = ["usage.internal.quarryline.dev", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "usage.metering",
    "usage.invoicing",
]
""",
    ),
    _t(
        "usage-service/usage/settings/production.py",
        "h19_py_db_ref",
        False,
        """
import json
import os

import boto3
import sentry_sdk

from .base import *  # noqa: F403

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": os.environ.get("DB_HOST", "usage-db.internal"),
        "NAME": "usage",
        "USER": "usage_svc",
        "PASSWORD": {V},
    }
}

STRIPE_API_KEY = os.environ["STRIPE_RESTRICTED_KEY"]

sentry_sdk.init(dsn=os.environ.get("SENTRY_DSN"), traces_sample_rate=0.05)
""",
    ),
    _t(
        "usage-service/alembic.ini",
        "h19_url_pw",
        True,
        """
[alembic]
script_location = migrations
prepend_sys_path = .
# overridden by USAGE_DB_URL in CI; this one points at the shared staging DB
sqlalchemy.url = postgresql+psycopg://usage_svc:{V}@usage-staging.cluster-c9x2q1r8m0ab.us-east-1.rds.amazonaws.com:5432/usage

[loggers]
keys = root,sqlalchemy,alembic

[logger_root]
level = WARN
handlers = console
""",
    ),
    _t(
        "usage-service/.sentryclirc",
        "h19_sentry_token",
        True,
        """
[defaults]
url = https://sentry.io/
org = quarryline
project = usage-service

[auth]
token = {V}
""",
    ),
    _t(
        "usage-service/Makefile",
        "h19_docker_pat",
        True,
        """
VERSION ?= $(shell git describe --tags --always)
IMAGE := quarryline/usage-service
DOCKERHUB_USER := quarrylinebot
DOCKERHUB_TOKEN ?= {V}

.PHONY: release
release: build
	echo "$(DOCKERHUB_TOKEN)" | docker login -u $(DOCKERHUB_USER) --password-stdin
	docker push $(IMAGE):$(VERSION)
	sentry-cli releases new -p usage-service $(VERSION)
	sentry-cli releases finalize $(VERSION)

build:
	docker build -t $(IMAGE):$(VERSION) .
""",
    ),
    _t(
        "usage-service/scripts/segment_sources.py",
        "h19_segment_token",
        True,
        '''
"""List Segment sources and their write-key status (Segment Public API)."""

import httpx

SEGMENT_API = "https://api.segmentapis.com"
TOKEN = "{V}"  # workspace token "usage-svc-readonly"


def main() -> None:
    resp = httpx.get(
        f"{SEGMENT_API}/sources",
        headers={"Authorization": f"Bearer {TOKEN}"},
        params={"pagination.count": 100},
    )
    resp.raise_for_status()
    for src in resp.json()["data"]["sources"]:
        print(src["id"], src["slug"], src["enabled"])


if __name__ == "__main__":
    main()
''',
    ),
    _t(
        "usage-service/tests/test_metering.py",
        "h19_fake_test",
        False,
        """
import pytest

from usage.metering import ingest


@pytest.fixture
def headers():
    return {"Authorization": "Bearer {V}", "X-Quarryline-Org": "org_test"}


def test_rejects_unknown_key(client, headers):
    resp = client.post("/v1/usage/events", json={"events": []}, headers=headers)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


def test_accepts_batch(client, seeded_key):
    resp = client.post(
        "/v1/usage/events",
        json={"events": [{"project": "prj_1", "units": 3}]},
        headers={"Authorization": f"Bearer {seeded_key}"},
    )
    assert resp.status_code == 202
""",
    ),
    _t(
        "usage-service/poetry.lock",
        "h19_sha256",
        False,
        """
[[package]]
name = "stripe"
version = "9.9.0"
description = "Python bindings for the Stripe API"
optional = false
python-versions = ">=3.6"
files = [
    {file = "stripe-9.9.0-py2.py3-none-any.whl", hash = "sha256:{V}"},
    {file = "stripe-9.9.0.tar.gz", hash = "sha256:{V2}"},
]
""",
    ),
    _t(
        "usage-service/usage/invoicing/stripe_sync.py",
        "h19_stripe_rk",
        True,
        '''
"""Push metered usage to Stripe as usage records. Runs hourly from the usage-sync CronJob."""

import stripe

# restricted key: write access to usage records + read access to subscriptions only
stripe.api_key = "{V}"
stripe.max_network_retries = 3


def push(subscription_item: str, quantity: int, ts: int) -> None:
    stripe.SubscriptionItem.create_usage_record(
        subscription_item, quantity=quantity, timestamp=ts, action="increment"
    )
''',
    ),
    _t(
        "usage-service/usage/invoicing/webhooks.py",
        "h19_stripe_whsec",
        True,
        """
import stripe
from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt

ENDPOINT_SECRET = "{V}"


@csrf_exempt
def stripe_webhook(request):
    sig_header = request.headers.get("Stripe-Signature", "")
    try:
        event = stripe.Webhook.construct_event(request.body, sig_header, ENDPOINT_SECRET)
    except (ValueError, stripe.error.SignatureVerificationError):
        return HttpResponseBadRequest()
    handle(event)
    return HttpResponse(status=200)
""",
    ),
    _t(
        "billing/catalog/products.json",
        "h19_stripe_price",
        False,
        """
{
  "plans": [
    {
      "slug": "developer",
      "stripe_product": "prod_Q3vM1xYp7HdK4e",
      "stripe_price_monthly": "{V}",
      "stripe_price_yearly": "{V2}",
      "included_requests": 100000
    },
    {
      "slug": "team",
      "stripe_product": "prod_Q3vN8kRt0cLm2A",
      "included_requests": 2000000
    }
  ]
}
""",
    ),
    _t(
        "billing/fixtures/invoice.paid.json",
        "h19_stripe_cus",
        False,
        """
{
  "id": "evt_1PQx2LBz9v4K7aWnR0s3TqYc",
  "object": "event",
  "api_version": "2024-04-10",
  "type": "invoice.paid",
  "data": {
    "object": {
      "id": "in_1PQx2KBz9v4K7aWn8mJd1FgH",
      "object": "invoice",
      "customer": "{V}",
      "subscription": null,
      "amount_paid": 4900,
      "currency": "usd"
    }
  }
}
""",
    ),
    _t(
        "web/dashboard/src/lib/stripe.ts",
        "h19_stripe_pk",
        False,
        """
import { loadStripe } from '@stripe/stripe-js';

// Publishable keys are safe to ship to the browser.
const STRIPE_PUBLISHABLE_KEY =
  import.meta.env.MODE === 'production'
    ? '{V}'
    : 'pk_test_51Ok0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000';

export const stripePromise = loadStripe(STRIPE_PUBLISHABLE_KEY);
""",
    ),
    # ------------------------------------------------------------------ docs site
    _t(
        "docs/docusaurus.config.js",
        "h19_algolia_search",
        False,
        """
// @ts-check
/** @type {import('@docusaurus/types').Config} */
const config = {
  title: 'Quarryline Docs',
  url: 'https://docs.quarryline.dev',
  baseUrl: '/',
  i18n: {
    defaultLocale: 'en',
    locales: ['en', 'ja', 'de', 'pt-BR', 'zh-Hans'],
  },
  themeConfig: {
    algolia: {
      appId: 'Q8L2ZK7HWN',
      // Public API key: it is safe to commit it (search-only, from DocSearch)
      apiKey: '{V}',
      indexName: 'quarryline',
      contextualSearch: true,
    },
  },
};

module.exports = config;
""",
    ),
    _t(
        "docs/scripts/reindex-algolia.sh",
        "h19_algolia_admin",
        True,
        """
#!/bin/sh
# Re-run the DocSearch scraper against the deployed docs (uses the ADMIN key, not the search key).
set -e
docker run --rm \\
  -e APPLICATION_ID=Q8L2ZK7HWN \\
  -e API_KEY={V} \\
  -e "CONFIG=$(cat docsearch.json | jq -r tostring)" \\
  algolia/docsearch-scraper
""",
    ),
    _t(
        "docs/docs/quickstart.mdx",
        "h19_placeholder",
        False,
        """
---
sidebar_position: 1
title: Quickstart
---

import Tabs from '@theme/Tabs';
import TabItem from '@theme/TabItem';

Create a key in the [dashboard](https://app.quarryline.dev/keys), then:

<Tabs groupId="sdk">
<TabItem value="python" label="Python">

```python
from quarryline import Quarryline

client = Quarryline(api_key="{V}")
```

</TabItem>
<TabItem value="go" label="Go">

```go
client := quarryline.NewClient(option.WithAPIKey("{V2}"))
```

</TabItem>
</Tabs>
""",
    ),
    _t(
        "docs/docs/authentication.md",
        "h19_masked_key",
        False,
        """
---
title: Authentication
---

Quarryline authenticates requests with secret API keys. Keys are shown **once**, when you
create them; afterwards the dashboard only shows a masked form such as `{V}`.

| Key type | Prefix       | Use                         |
|----------|--------------|-----------------------------|
| Secret   | `qk_live_`   | Server-side requests        |
| Admin    | `qk_admin_`  | Managing keys and members   |
| Test     | `qk_test_`   | Sandbox, no billing         |

If a key leaks, revoke it from **Settings → API keys**. A revoked key shows up in the audit log with
its prefix and last four characters only.
""",
    ),
    _t(
        "docs/docs/self-hosting/helm.md",
        "h19_doc_host_pw",
        False,
        """
# Self-hosted gateway with Helm

The gateway needs a PostgreSQL database and a Redis instance. In `values.yaml`:

```yaml
gateway:
  database:
    url: postgres://gateway:{V}@postgres.example.com:5432/gateway
  redis:
    url: redis://:{V2}@redis.example.internal.test:6379/0
```

Then install the chart:

```sh
helm install ql-gateway quarryline/gateway -f values.yaml
```
""",
    ),
    _t(
        "docs/docs/webhooks/verify.md",
        "h19_doc_host_pw",
        False,
        """
# Verifying webhook signatures

Every delivery carries a `Quarryline-Signature` header: `t=<unix>,v1=<hex hmac-sha256>`.

For local testing you can point an endpoint at a basic-auth protected URL, for example
`https://hooks:{V}@webhooks.example.com/quarryline`, and replay events with:

```sh
quarryline webhooks replay evt_01HZ... --to https://hooks:{V2}@receiver.invalid/quarryline
```
""",
    ),
    _t(
        "docs/static/openapi.yaml",
        "h19_ql_doc_example",
        False,
        """
openapi: 3.1.0
info:
  title: Quarryline API
  version: "2024-06-01"
servers:
  - url: https://api.quarryline.dev/v1
components:
  securitySchemes:
    bearerAuth:
      type: http
      scheme: bearer
      description: |
        Use a secret key: `Authorization: Bearer <key>`.
  schemas:
    ApiKey:
      type: object
      properties:
        id:
          type: string
          example: key_01HQ7X3D0Y5B8M2N4P6R9T1V3W
        secret:
          type: string
          description: Only returned on creation.
          example: "{V}"
""",
    ),
    _t(
        "docs/docs/guides/aws-integration.md",
        "h19_aws_doc_secret",
        False,
        """
# Exporting usage to S3

Give Quarryline an IAM user with `s3:PutObject` on your bucket, then:

```sh
quarryline exports create s3 \\
  --bucket my-usage-exports \\
  --access-key-id AKIAIOSFODNN7EXAMPLE \\
  --secret-access-key {V}
```

The values above are the AWS documentation examples; use your own.
""",
    ),
    _t(
        "docs/i18n/ja/docusaurus-plugin-content-docs/current/authentication.md",
        "h19_i18n_ja",
        False,
        """
---
title: 認証
---

Quarryline の API はシークレット API キーで認証します。

:::warning
{V}
:::

ダッシュボードの **設定 → API キー** からキーを作成できます。
""",
    ),
    _t(
        "docs/i18n/ja/code.json",
        "h19_i18n_ja",
        False,
        """
{
  "keys.create.title": {
    "message": "API キーを作成"
  },
  "keys.create.once": {
    "message": "{V}"
  },
  "auth.error.invalid": {
    "message": "{V2}"
  }
}
""",
    ),
    _t(
        "docs/i18n/de/code.json",
        "h19_i18n_de",
        False,
        """
{
  "keys.create.title": {
    "message": "API-Schlüssel erstellen"
  },
  "keys.create.once": {
    "message": "{V}"
  },
  "auth.error.invalid": {
    "message": "{V2}"
  }
}
""",
    ),
    _t(
        "docs/i18n/pt-BR/code.json",
        "h19_i18n_pt",
        False,
        """
{
  "keys.create.title": {
    "message": "Criar chave de API"
  },
  "keys.create.once": {
    "message": "{V}"
  },
  "auth.error.invalid": {
    "message": "{V2}"
  }
}
""",
    ),
    _t(
        "docs/i18n/zh-Hans/code.json",
        "h19_i18n_zh",
        False,
        """
{
  "keys.create.title": {
    "message": "创建 API 密钥"
  },
  "keys.create.once": {
    "message": "{V}"
  },
  "auth.error.invalid": {
    "message": "{V2}"
  }
}
""",
    ),
    _t(
        "docs/i18n/de/docusaurus-plugin-content-docs/current/tutorials/staging-umgebung.md",
        "h19_de_pw",
        True,
        """
# Staging-Umgebung für Workshops

Für den Workshop am 14. Juni nutzen wir das gemeinsame Demo-Konto:

- Dashboard: https://app.staging.quarryline.dev
- Benutzer: `workshop@quarryline.dev`
- Passwort: `{V}`

Die Datenbank der Beispiel-App erreicht ihr mit:

```sh
PGPASSWORD='{V2}' psql -h demo-db.staging.quarryline.dev -U workshop demo
```

Bitte nach dem Workshop nicht weitergeben.
""",
    ),
    _t(
        "docs/i18n/pt-BR/docusaurus-plugin-content-docs/current/tutoriais/ambiente-de-testes.md",
        "h19_pt_pw",
        True,
        """
# Ambiente de testes (meetup São Paulo)

Use a conta compartilhada do meetup:

| Campo   | Valor                         |
|---------|-------------------------------|
| Usuário | `meetup-sp@quarryline.dev`    |
| Senha   | `{V}`                         |

Para o exemplo com Redis, a senha é `{V2}` (host `meetup-redis.staging.quarryline.dev`).
""",
    ),
    _t(
        "docs/i18n/ja/docusaurus-plugin-content-docs/current/tutorials/hands-on.md",
        "h19_api_key",
        True,
        """
# ハンズオン（東京ミートアップ）

当日は以下の共有 API キーを使ってください（イベント終了後に失効させます）。

```sh
export QUARRYLINE_API_KEY={V}
quarryline projects list
```

Go SDK の場合:

```go
client := quarryline.NewClient(option.WithAPIKey("{V2}"))
```
""",
    ),
    _t(
        "docs/i18n/zh-Hans/translator-notes.md",
        "h19_crowdin",
        True,
        """
# 翻译流程说明（内部）

1. 在 Crowdin 项目 `quarryline-docs` 中完成翻译。
2. 本地同步：

```sh
export CROWDIN_PERSONAL_TOKEN={V}
npm run crowdin:download -- --language zh-CN
```

3. 提交 PR 并 @wen 审核。

注意：术语表中 “API key” 统一译为 “API 密钥”，“secret” 译为 “密钥”。
""",
    ),
    _t(
        ".github/workflows/crowdin-sync.yml",
        "h19_ci_gh_ref",
        False,
        """
name: crowdin-sync
on:
  schedule:
    - cron: "0 3 * * 1-5"
  workflow_dispatch:
jobs:
  sync:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: crowdin/github-action@v2
        with:
          upload_sources: true
          download_translations: true
          localization_branch_name: l10n_crowdin
          create_pull_request: true
          config: docs/crowdin.yml
        env:
          CROWDIN_PROJECT_ID: "614027"
          CROWDIN_PERSONAL_TOKEN: ${{ secrets.CROWDIN_PERSONAL_TOKEN }}
          GITHUB_TOKEN: {V}
""",
    ),
    _t(
        "docs-legacy/mkdocs.yml",
        "h19_placeholder",
        False,
        """
site_name: Quarryline Docs (v1, archived)
site_url: https://v1.docs.quarryline.dev
theme:
  name: material
  language: en
extra:
  analytics:
    provider: google
    property: !ENV [GOOGLE_ANALYTICS_KEY, "G-XXXXXXXXXX"]
  api_key_example: "{V}"
plugins:
  - search
  - i18n:
      languages:
        - locale: ja
        - locale: de
""",
    ),
    _t(
        ".github/workflows/deploy-docs.yml",
        "h19_cf_token",
        True,
        """
name: deploy-docs
on:
  push:
    branches: [main]
    paths: ["docs/**"]
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 20
          cache: npm
          cache-dependency-path: docs/package-lock.json
      - run: npm ci && npm run build
        working-directory: docs
      - uses: cloudflare/wrangler-action@v3
        with:
          apiToken: {V}
          accountId: 5f0c2a6e9b4d41c8a7e3f19d2b6c0e84
          command: pages deploy docs/build --project-name=quarryline-docs
""",
    ),
    _t(
        "docs/docs/code-samples/create_key.go",
        "h19_go_ref",
        False,
        """
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/quarryline/quarryline-go"
	"github.com/quarryline/quarryline-go/option"
)

func main() {
	client := quarryline.NewClient(option.WithAPIKey({V}))
	key, err := client.Keys.New(context.Background(), quarryline.KeyNewParams{
		Name:   quarryline.F("ci"),
		Scopes: quarryline.F([]string{"projects:read"}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(key.Secret)
}
""",
    ),
    _t(
        "docs/docs/code-samples/create_key.cs",
        "h19_cs_ref",
        False,
        """
using Quarryline;

var client = new QuarrylineClient(new QuarrylineClientOptions
{
    ApiKey = {V},
});

var key = await client.Keys.CreateAsync(new KeyCreateParams { Name = "ci", Scopes = ["projects:read"] });
Console.WriteLine(key.Secret);
""",
    ),
    _t(
        "docs/blog/2024-04-18-key-leak-postmortem.md",
        "h19_masked_key",
        False,
        """
---
slug: key-leak-postmortem
title: "Postmortem: an admin key in a public gist"
authors: [maya]
---

On April 16 a customer's admin key (`{V}`) was published in a public gist. Our secret scanning
partner notified us within four minutes and we revoked the key automatically. The request log
showed three calls from the key after publication, all `GET /v1/projects`, rejected with
`api_key_revoked` once the revocation propagated.

We now scan all public GitHub pushes for `qk_admin_` prefixes.
""",
    ),
    # ------------------------------------------------------------------ examples repositories
    _t(
        "examples/nextjs-dashboard/.env.local",
        "h19_api_key",
        True,
        """
# copied from 1Password "Examples / nextjs-dashboard" -- don't commit
QUARRYLINE_API_KEY={V}
QUARRYLINE_ADMIN_KEY={V2}
QUARRYLINE_WORKSPACE_KEY={V3}
NEXT_PUBLIC_APP_URL=http://localhost:3000
""",
    ),
    _t(
        "examples/nextjs-dashboard/app/api/projects/route.ts",
        "h19_ts_ref",
        False,
        """
import { NextResponse } from 'next/server';
import Quarryline from '@quarryline/sdk';

const client = new Quarryline({ apiKey: {V} });

export async function GET() {
  const page = await client.projects.list({ limit: 20 });
  return NextResponse.json(page.data);
}
""",
    ),
    _t(
        "examples/flask-webhooks/app.py",
        "h19_webhook_secret",
        True,
        """
import hmac
import hashlib

from flask import Flask, abort, request

app = Flask(__name__)

# endpoint "flask-example" on the ql-examples org
WEBHOOK_SECRET = "{V}"


@app.post("/webhooks/quarryline")
def quarryline_webhook():
    header = request.headers.get("Quarryline-Signature", "")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    payload = f"{parts.get('t')}.".encode() + request.get_data()
    expected = hmac.new(WEBHOOK_SECRET.encode(), payload, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        abort(400)
    return "", 204
""",
    ),
    _t(
        "examples/flask-webhooks/README.md",
        "h19_placeholder",
        False,
        """
# Flask webhook receiver

1. Create a webhook endpoint in the dashboard pointing to your tunnel URL.
2. Copy the signing secret and start the app:

```sh
export QUARRYLINE_WEBHOOK_SECRET=<signing-secret-from-dashboard>
flask --app app run --port 5001
```

3. Send a test event: `quarryline webhooks trigger project.created --api-key {V}`
""",
    ),
    _t(
        "examples/rust-axum/src/main.rs",
        "h19_url_pw",
        True,
        """
use axum::{routing::get, Router};
use sqlx::postgres::PgPoolOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .connect("postgres://axum_demo:{V}@ql-examples-db.staging.quarryline.dev:5432/axum_demo")
        .await?;

    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .with_state(pool);

    let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
""",
    ),
    _t(
        "examples/notebooks/quickstart.ipynb",
        "h19_api_key",
        True,
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Quarryline quickstart\n", "List projects and plot daily usage."]
  },
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [],
   "source": [
    "from quarryline import Quarryline\n",
    "import pandas as pd\n",
    "\n",
    "client = Quarryline(api_key=\"{V}\")\n",
    "usage = client.usage.query(window=\"30d\", group_by=[\"project\"])\n",
    "df = pd.DataFrame(usage.rows)"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "examples/notebooks/quickstart_clean.py",
        "h19_py_ref",
        False,
        """
# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     name: python3
# ---

# %% [markdown]
# # Quarryline quickstart (paired script: edit this, not the .ipynb)

# %%
import getpass
import os

import keyring
from quarryline import Quarryline

api_key = {V}
client = Quarryline(api_key=api_key)

# %%
for project in client.projects.list():
    print(project.id, project.name)
""",
    ),
    _t(
        "examples/go-cli-plugin/README.md",
        "h19_placeholder",
        False,
        """
# quarryline-plugin-sample

A sample `quarryline` CLI plugin. Install with:

```sh
go install github.com/quarryline/examples/go-cli-plugin@latest
quarryline plugin link quarryline-plugin-sample
```

Configure your profile in `~/.config/quarryline/config.toml`:

```toml
[profiles.default]
api_key = "{V}"
base_url = "https://api.quarryline.dev/v1"
```
""",
    ),
    # ------------------------------------------------------------------ integration tests
    _t(
        "integration-tests/config/staging.toml",
        "h19_api_key",
        True,
        """
[staging]
base_url = "https://api.staging.quarryline.dev/v1"
org_id = "org_01HQ2W9ZK8C4N6V0RTE5XG3M7B"
api_key = "{V}"
admin_key = "{V2}"

[staging.webhooks]
receiver = "https://it-receiver.staging.quarryline.dev/hooks"
""",
    ),
    _t(
        "integration-tests/fixtures/users.json",
        "h19_pw_hash",
        False,
        """
[
  {
    "email": "it-owner@quarryline.dev",
    "role": "owner",
    "password_hash": "{V}"
  },
  {
    "email": "it-member@quarryline.dev",
    "role": "member",
    "password_hash": "{V2}"
  }
]
""",
    ),
    _t(
        "integration-tests/tests/test_dashboard_login.py",
        "h19_weak_pw",
        True,
        """
import os

import pytest
from playwright.sync_api import Page, expect

BASE = os.environ.get("DASHBOARD_URL", "https://app.staging.quarryline.dev")

# shared staging accounts (seeded by integration-tests/seed.py)
OWNER = ("it-owner@quarryline.dev", "{V}")
MEMBER = ("it-member@quarryline.dev", "{V2}")


@pytest.mark.parametrize("creds", [OWNER, MEMBER])
def test_login(page: Page, creds):
    email, password = creds
    page.goto(f"{BASE}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Projects")).to_be_visible()
""",
    ),
    _t(
        "integration-tests/cassettes/test_keys/test_create.yaml",
        "h19_api_key",
        True,
        """
interactions:
- request:
    body: '{"name": "it-ephemeral", "scopes": ["projects:read"]}'
    headers:
      Accept:
      - application/json
      Authorization:
      - Bearer {V}
      User-Agent:
      - quarryline-python/0.9.3
    method: POST
    uri: https://api.staging.quarryline.dev/v1/keys
  response:
    body:
      string: '{"id": "key_01HZ3Q9W8E7R6T5Y4U3I2O1P0A", "name": "it-ephemeral", "secret": "{V2}"}'
    headers:
      Content-Type:
      - application/json
    status:
      code: 201
      message: Created
version: 1
""",
    ),
    _t(
        "integration-tests/cassettes/test_projects/test_list.yaml",
        "h19_masked_key",
        False,
        """
interactions:
- request:
    body: null
    headers:
      Authorization:
      - Bearer {V}
      User-Agent:
      - quarryline-python/0.9.3
    method: GET
    uri: https://api.staging.quarryline.dev/v1/projects?limit=10
  response:
    body:
      string: '{"data": [], "has_more": false}'
    headers:
      Content-Type:
      - application/json
    status:
      code: 200
      message: OK
version: 1
""",
    ),
    _t(
        "integration-tests/k6/ingest-load.js",
        "h19_jwt",
        True,
        """
import http from 'k6/http';
import { check, sleep } from 'k6';

export const options = {
  vus: 50,
  duration: '5m',
  thresholds: { http_req_duration: ['p(95)<250'] },
};

// long-lived service token minted with `quarry-admin tokens mint --sub ci_k6`
const TOKEN = '{V}';

export default function () {
  const res = http.post(
    'https://ingest.staging.quarryline.dev/v1/usage/events',
    JSON.stringify({ events: [{ project: 'prj_load', units: 1 }] }),
    { headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' } },
  );
  check(res, { accepted: (r) => r.status === 202 });
  sleep(0.1);
}
""",
    ),
    _t(
        "integration-tests/fixtures/request_ids.txt",
        "h19_uuid",
        False,
        """
# request ids from the 2024-06-02 flaky run (see QL-1423)
{V}  POST /v1/keys            502
{V2}  GET  /v1/projects        200
""",
    ),
    _t(
        "integration-tests/fixtures/keys.yaml",
        "h19_ulid",
        False,
        """
# ids only; secrets are created per run and never written to disk
keys:
  - id: {V}
    name: it-readonly
    scopes: [projects:read]
  - id: {V2}
    name: it-admin
    scopes: [admin]
org: org_01HQ2W9ZK8C4N6V0RTE5XG3M7B
""",
    ),
    # ------------------------------------------------------------------ Terraform: AWS
    _t(
        "infra/terraform/aws/rds.tf",
        "h19_pw",
        True,
        """
resource "aws_db_instance" "quarry_api" {
  identifier              = "quarry-api-prod"
  engine                  = "postgres"
  engine_version          = "16.2"
  instance_class          = "db.r6g.large"
  allocated_storage       = 200
  db_name                 = "quarry"
  username                = "quarry_admin"
  password                = "{V}"
  backup_retention_period = 14
  deletion_protection     = true
  skip_final_snapshot     = false
}

resource "aws_db_instance" "quarry_api_replica" {
  identifier          = "quarry-api-prod-reporting"
  replicate_source_db = aws_db_instance.quarry_api.identifier
  instance_class      = "db.r6g.large"
  # reporting role created by hand, see runbooks/db.md
  password            = "{V2}"
}
""",
    ),
    _t(
        "infra/terraform/aws/rds_usage.tf",
        "h19_tf_ref",
        False,
        """
resource "random_password" "usage_db" {
  length  = 32
  special = false
}

resource "aws_db_instance" "usage" {
  identifier     = "usage-prod"
  engine         = "postgres"
  instance_class = "db.t4g.medium"
  username       = "usage_admin"
  password       = {V}
}

resource "aws_elasticache_user" "ratelimit" {
  user_id       = "ratelimit"
  user_name     = "ratelimit"
  access_string = "on ~rl:* +@all"
  engine        = "REDIS"
  passwords     = [random_password.ratelimit.result]
}
""",
    ),
    _t(
        "infra/terraform/aws/terraform.tfstate",
        "h19_pw",
        True,
        """
{
  "version": 4,
  "terraform_version": "1.7.5",
  "serial": 212,
  "lineage": "8c1d7e0a-42f3-4b9e-9a57-6d0f2c31e8b4",
  "resources": [
    {
      "mode": "managed",
      "type": "random_password",
      "name": "usage_db",
      "provider": "provider[\\"registry.terraform.io/hashicorp/random\\"]",
      "instances": [
        {
          "schema_version": 3,
          "attributes": {
            "id": "none",
            "length": 32,
            "result": "{V}",
            "special": false
          },
          "sensitive_attributes": []
        }
      ]
    },
    {
      "mode": "managed",
      "type": "aws_db_instance",
      "name": "usage",
      "provider": "provider[\\"registry.terraform.io/hashicorp/aws\\"]",
      "instances": [
        {
          "schema_version": 2,
          "attributes": {
            "identifier": "usage-prod",
            "username": "usage_admin",
            "password": "{V2}",
            "port": 5432
          }
        }
      ]
    }
  ]
}
""",
    ),
    _t(
        "dotfiles/maya/.aws/credentials",
        "h19_aws_ini_pair",
        True,
        """
[default]
region = us-east-1
{V}

[quarry-release]
{V2}
""",
    ),
    _t(
        "infra/terraform/aws/iam_ci.tf",
        "h19_aws_arn",
        False,
        """
data "aws_iam_policy_document" "release_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = ["arn:aws:iam::381492075516:oidc-provider/token.actions.githubusercontent.com"]
    }
  }
}

output "release_role_arn" {
  value = "{V}"
}

output "signing_kms_key" {
  value = "{V2}"
}
""",
    ),
    _t(
        "infra/terraform/aws/kms_secrets.tf",
        "h19_kms_blob",
        False,
        """
# Ciphertext produced with `aws kms encrypt --key-id alias/quarry-infra`; decrypted at plan time.
data "aws_kms_secrets" "api" {
  secret {
    name    = "stripe_secret_key"
    payload = "{V}"
  }
  secret {
    name    = "hmac_signing_secret"
    payload = "{V2}"
  }
}
""",
    ),
    _t(
        "infra/terraform/.terraform.lock.hcl",
        "h19_gosum",
        False,
        """
# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/cloudflare/cloudflare" {
  version     = "4.33.0"
  constraints = "~> 4.30"
  hashes = [
    "{V}",
    "{V2}",
  ]
}
""",
    ),
    _t(
        "infra/terraform/aws/backend.tf",
        "h19_tfc_token",
        True,
        """
terraform {
  cloud {
    organization = "quarryline"
    hostname     = "app.terraform.io"
    token        = "{V}"

    workspaces {
      name = "aws-prod"
    }
  }
}
""",
    ),
    # ------------------------------------------------------------------ Terraform: Cloudflare
    _t(
        "infra/terraform/cloudflare/main.tf",
        "h19_cf_id",
        False,
        """
locals {
  account_id = "{V}"
  zone_id    = "{V2}"
}

resource "cloudflare_record" "api" {
  zone_id = local.zone_id
  name    = "api"
  type    = "CNAME"
  value   = "quarry-api-prod-1837264.us-east-1.elb.amazonaws.com"
  proxied = true
}

resource "cloudflare_pages_project" "docs" {
  account_id        = local.account_id
  name              = "quarryline-docs"
  production_branch = "main"
}
""",
    ),
    _t(
        "infra/terraform/cloudflare/providers.tf",
        "h19_cf_token",
        True,
        """
terraform {
  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 4.30"
    }
  }
}

provider "cloudflare" {
  # token "terraform-zone-edit" (Zone:Edit, DNS:Edit, Pages:Edit)
  api_token = "{V}"
}
""",
    ),
    _t(
        "infra/terraform/cloudflare/terraform.tfvars",
        "h19_cf_global_key",
        True,
        """
cloudflare_email   = "infra@quarryline.dev"
cloudflare_api_key = "{V}"
waf_mode           = "block"
""",
    ),
    _t(
        "infra/terraform/cloudflare/r2.tf",
        "h19_r2_secret",
        True,
        """
resource "cloudflare_r2_bucket" "releases" {
  account_id = local.account_id
  name       = "quarryline-releases"
  location   = "ENAM"
}

# R2 S3-compatible credentials used by goreleaser's blob upload
provider "aws" {
  alias                       = "r2"
  region                      = "auto"
  access_key                  = var.r2_access_key_id
  secret_key                  = "{V}"
  skip_credentials_validation = true
  skip_region_validation      = true
  skip_requesting_account_id  = true
  endpoints {
    s3 = "https://${local.account_id}.r2.cloudflarestorage.com"
  }
}
""",
    ),
    _t(
        "infra/terraform/cloudflare/variables.tf",
        "h19_tf_cf_ref",
        False,
        """
variable "cloudflare_api_token" {
  type      = string
  sensitive = true
}

variable "r2_secret_access_key" {
  type      = string
  sensitive = true
}

provider "cloudflare" {
  api_token = {V}
}

module "r2_creds" {
  source     = "./modules/r2-creds"
  secret_key = var.r2_secret_access_key
}
""",
    ),
    # ------------------------------------------------------------------ Kubernetes
    _t(
        "infra/k8s/quarry-api/secret.yaml",
        "h19_k8s_b64_pw",
        True,
        """
apiVersion: v1
kind: Secret
metadata:
  name: quarry-api-db
  namespace: api
type: Opaque
data:
  username: cXVhcnJ5X2FwaQ==
  password: {V}
  redis-password: {V2}
  admin-bootstrap-password: {V3}
""",
    ),
    _t(
        "infra/k8s/quarry-api/sealedsecret.yaml",
        "h19_sealed",
        False,
        """
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: quarry-api-stripe
  namespace: api
spec:
  encryptedData:
    STRIPE_SECRET_KEY: {V}
    STRIPE_WEBHOOK_SECRET: {V2}
  template:
    metadata:
      name: quarry-api-stripe
      namespace: api
""",
    ),
    _t(
        "infra/k8s/quarry-api/deployment.yaml",
        "h19_k8s_ref",
        False,
        """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: quarry-api
  namespace: api
spec:
  replicas: 4
  selector:
    matchLabels: {app: quarry-api}
  template:
    metadata:
      labels: {app: quarry-api}
    spec:
      imagePullSecrets:
        - name: ghcr-pull
      containers:
        - name: api
          image: ghcr.io/quarryline/quarry-api:1.42.0
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {V}
                  key: password
            - name: STRIPE_SECRET_KEY
              valueFrom:
                secretKeyRef:
                  name: quarry-api-stripe
                  key: STRIPE_SECRET_KEY
""",
    ),
    _t(
        "infra/helm/quarry-api/values-prod.yaml",
        "h19_pw",
        True,
        """
image:
  repository: ghcr.io/quarryline/quarry-api
  tag: "1.42.0"

postgresql:
  auth:
    username: quarry_api
    password: "{V}"
    postgresPassword: "{V2}"

redis:
  auth:
    enabled: true
    password: "{V3}"

ingress:
  enabled: true
  className: nginx
  hosts:
    - host: api.quarryline.dev
""",
    ),
    _t(
        "infra/helm/usage-service/values-prod.enc.yaml",
        "h19_sops",
        False,
        """
postgresql:
    auth:
        password: {V}
django:
    secretKey: {V2}
sops:
    kms:
        - arn: arn:aws:kms:us-east-1:381492075516:alias/sops-usage
          created_at: "2024-05-21T10:02:44Z"
          enc: AQICAHhs1pKq0wM6mHq4Z6v2
          aws_profile: ""
    lastmodified: "2024-05-21T10:02:45Z"
    version: 3.8.1
""",
    ),
    _t(
        "infra/k8s/kubeconfig-ci.yaml",
        "h19_k8s_token",
        True,
        """
apiVersion: v1
kind: Config
clusters:
  - name: quarry-prod
    cluster:
      server: https://9C41E2B7D05A3F86.gr7.us-east-1.eks.amazonaws.com
      insecure-skip-tls-verify: false
contexts:
  - name: ci@quarry-prod
    context:
      cluster: quarry-prod
      user: ci
      namespace: api
current-context: ci@quarry-prod
users:
  - name: ci
    user:
      token: {V}
  - name: argo
    user:
      token: {V2}
""",
    ),
    _t(
        "infra/k8s/kubeconfig-template.yaml",
        "h19_b64_cert",
        False,
        """
apiVersion: v1
kind: Config
clusters:
  - name: quarry-staging
    cluster:
      certificate-authority-data: {V}
      server: https://4AF01D97C2E85B36.yl4.us-east-1.eks.amazonaws.com
users:
  - name: sso
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1beta1
        command: aws
        args: ["eks", "get-token", "--cluster-name", "quarry-staging", "--profile", "quarry-sso"]
""",
    ),
    _t(
        "infra/k8s/ingress/origin-tls.yaml",
        "h19_b64_pem",
        True,
        """
apiVersion: v1
kind: Secret
metadata:
  name: cloudflare-origin-cert
  namespace: ingress-nginx
type: kubernetes.io/tls
data:
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUVvakNDQTRxZ0F3SUJBZ0lVRDhzNGl2d0tjN0JrT3E1dHBBaFhqR2Y3ZUZzd0RRWUpLb1pJaHZjTkFRRUwKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
  tls.key: {V}
""",
    ),
    _t(
        "infra/k8s/ingress/origin-ca.pem",
        "h19_cert",
        False,
        """
# Cloudflare Origin CA certificate for *.quarryline.dev (public part only)
{V}
""",
    ),
    _t(
        "infra/k8s/external-secrets/quarry-api.yaml",
        "h19_aws_arn",
        False,
        """
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: quarry-api-db
  namespace: api
spec:
  refreshInterval: 1h
  secretStoreRef:
    name: aws-secrets-manager
    kind: ClusterSecretStore
  target:
    name: quarry-api-db
  data:
    - secretKey: password
      remoteRef:
        key: "{V}"
        property: password
    - secretKey: stripe
      remoteRef:
        key: "{V2}"
""",
    ),
    _t(
        "infra/k8s/images.lock",
        "h19_docker_digest",
        False,
        """
ghcr.io/quarryline/quarry-api:1.42.0@{V}
ghcr.io/quarryline/usage-service:2024.06.03@{V2}
""",
    ),
    # ------------------------------------------------------------------ customer support
    _t(
        "support/runbooks/impersonate-customer.md",
        "h19_pw",
        True,
        """
# Runbook: viewing a customer's dashboard (support impersonation)

Only for tickets with written consent from an org owner. Log the ticket id in #support-audit.

1. Sign in to the admin console: https://admin.internal.quarryline.dev
   - shared support login: `support@quarryline.dev` / `{V}`
   - (2FA code from the "Support" entry in 1Password)
2. Search the org id, click **Impersonate (read-only)**.
3. If the admin console is down, use the break-glass DB user on the read replica:

```sh
PGPASSWORD='{V2}' psql -h quarry-api-prod-reporting.c9x2q1r8m0ab.us-east-1.rds.amazonaws.com -U support_ro quarry
```

4. End the session from the banner. Sessions expire after 30 minutes anyway.
""",
    ),
    _t(
        "support/escalations/2024-11-07-acme-geodata.md",
        "h19_api_key",
        True,
        """
# Escalation: Acme Geodata -- 401s from the Java SDK after upgrade to 0.11

**Ticket:** ZD-48213  **Owner:** lucas  **Severity:** 2

Customer pasted their config in the ticket (asked them to rotate, they said "after the fix"):

```properties
quarryline.api-key={V}
quarryline.admin-key={V2}
quarryline.base-url=https://api.quarryline.dev/v1/
```

Root cause: trailing slash in base-url + 0.11's URI resolution dropped `/v1`. Fix in 0.11.1.
Follow-up: make sure the keys above get revoked if they don't rotate by Friday.
""",
    ),
    _t(
        "support/tools/zendesk_export.py",
        "h19_zendesk_token",
        True,
        '''
"""Export last week's tickets tagged `sdk-*` to CSV for the Monday triage."""

import csv
import datetime as dt

import requests

SUBDOMAIN = "quarryline"
EMAIL = "lucas@quarryline.dev"
API_TOKEN = "{V}"


def tickets_since(day: dt.date):
    url = f"https://{SUBDOMAIN}.zendesk.com/api/v2/search.json"
    params = {"query": f"type:ticket tags:sdk created>{day.isoformat()}"}
    while url:
        resp = requests.get(url, params=params, auth=(f"{EMAIL}/token", API_TOKEN), timeout=30)
        resp.raise_for_status()
        body = resp.json()
        yield from body["results"]
        url, params = body.get("next_page"), None
''',
    ),
    _t(
        "support/macros/account-security.json",
        "h19_ui_text",
        False,
        """
[
  {
    "title": "Security::Key rotated",
    "actions": [
      {"field": "subject", "value": "{V}"},
      {"field": "comment_value_html", "value": "<p>Hi {{ticket.requester.first_name}},</p><p>We rotated the key on your behalf. The old key stops working in 24 hours.</p>"}
    ]
  },
  {
    "title": "Security::Password reset",
    "actions": [
      {"field": "subject", "value": "{V2}"},
      {"field": "comment_value_html", "value": "<p>Use the link below to choose a new password. It expires in 1 hour.</p>"}
    ]
  }
]
""",
    ),
    # ------------------------------------------------------------------ community bots
    _t(
        "community-bot/.env",
        "h19_discord_bot",
        True,
        """
# Quarryline community Discord bot (quarrybot#4821)
DISCORD_BOT_TOKEN={V}
DISCORD_GUILD_ID=1102934857261047808
GITHUB_REPO=quarryline/quarryline-cli
LOG_LEVEL=info
""",
    ),
    _t(
        "community-bot/src/announce.ts",
        "h19_discord_webhook",
        True,
        """
import { WebhookClient, EmbedBuilder } from 'discord.js';

const announcements = new WebhookClient({
  url: '{V}',
});
const releases = new WebhookClient({
  url: '{V2}',
});

export async function announceRelease(sdk: string, version: string, url: string) {
  const embed = new EmbedBuilder()
    .setTitle(`${sdk} ${version} released`)
    .setURL(url)
    .setColor(0x5b6cff);
  await releases.send({ embeds: [embed] });
  if (version.endsWith('.0')) {
    await announcements.send({ content: `:rocket: ${sdk} ${version} is out!`, embeds: [embed] });
  }
}
""",
    ),
    _t(
        "community-bot/config/channels.json",
        "h19_discord_id",
        False,
        """
{
  "guild": "1102934857261047808",
  "channels": {
    "announcements": "{V}",
    "help-python": "{V2}",
    "help-go": "1102935012347822120"
  },
  "roles": {
    "maintainer": "1102936100124819526"
  }
}
""",
    ),
    _t(
        "slack-bot/app.py",
        "h19_slack_bot",
        True,
        """
import os

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

app = App(
    token="{V}",
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
)


@app.command("/ql-status")
def status(ack, respond):
    ack()
    respond("API: operational | Ingest: operational | Docs: operational")


if __name__ == "__main__":
    SocketModeHandler(app, os.environ["SLACK_APP_TOKEN"]).start()
""",
    ),
    _t(
        "slack-bot/config.toml",
        "h19_slack_signing",
        True,
        """
[slack]
app_id = "A06QK2L8M3R"
client_id = "5812734091.6829103847561"
signing_secret = "{V}"

[pagerduty]
service = "P7X2KQM"
""",
    ),
    _t(
        "release/scripts/notify-release.sh",
        "h19_slack_webhook",
        True,
        """
#!/usr/bin/env bash
# usage: notify-release.sh <sdk> <tag>
set -euo pipefail
SDK="$1"; TAG="$2"

RELEASES_WEBHOOK="{V}"
CUSTOMER_SUCCESS_WEBHOOK="{V2}"

payload=$(jq -n --arg t "*${SDK}* ${TAG} published :tada:" '{text: $t}')
curl -fsS -X POST -H 'Content-Type: application/json' -d "$payload" "$RELEASES_WEBHOOK"
if [[ "$TAG" == *.0 ]]; then
  curl -fsS -X POST -H 'Content-Type: application/json' -d "$payload" "$CUSTOMER_SUCCESS_WEBHOOK"
fi
""",
    ),
    _t(
        "docs-assistant/.env",
        "h19_openai",
        True,
        """
# "Ask the docs" bot on docs.quarryline.dev and in #help
OPENAI_API_KEY={V}
EMBEDDINGS_MODEL=text-embedding-3-small
VECTOR_DB_URL=http://localhost:6333
""",
    ),
    # ------------------------------------------------------------------ chat exports
    _t(
        "exports/slack/eng-oncall/2024-06-11.json",
        "h19_intl_pw",
        True,
        """
[
  {
    "type": "message",
    "user": "U04KQ2M8L1T",
    "text": "usage-db failover done, the new writer is up. reporting replica still points at the old one",
    "ts": "1718093212.004100"
  },
  {
    "type": "message",
    "user": "U03Z8R1N6PV",
    "text": "can someone give me the usage_admin pw? 1P is timing out for me",
    "ts": "1718093260.004300"
  },
  {
    "type": "message",
    "user": "U04KQ2M8L1T",
    "text": "{V} (will rotate after the incident)",
    "ts": "1718093288.004500"
  },
  {
    "type": "message",
    "user": "U03Z8R1N6PV",
    "text": "thx. also redis requirepass on the new node is `{V2}`, same as staging :grimacing:",
    "ts": "1718093402.004900"
  }
]
""",
    ),
    _t(
        "exports/discord/contributors-2024-05.txt",
        "h19_github",
        True,
        """
[2024-05-14 21:03] kaito_dev: the goreleaser step fails on my fork with "401 Bad credentials"
[2024-05-14 21:05] ren (Quarryline): which token are you using for HOMEBREW_TAP_GITHUB_TOKEN?
[2024-05-14 21:07] kaito_dev: this one {V}
[2024-05-14 21:07] ren (Quarryline): please delete that message and revoke it right away, it's a public channel
[2024-05-14 21:08] kaito_dev: oops. done
""",
    ),
    # ------------------------------------------------------------------ dotfiles and scratch
    _t(
        "dotfiles/maya/.zshrc",
        "h19_github",
        True,
        """
export EDITOR=nvim
export GOPATH="$HOME/go"
export PATH="$HOME/.local/bin:$GOPATH/bin:$PATH"

# tokens
export GITHUB_TOKEN={V}
export HOMEBREW_GITHUB_API_TOKEN={V2}

alias k=kubectl
alias qls='quarryline --profile staging'
eval "$(starship init zsh)"
""",
    ),
    _t(
        "dotfiles/tobias/.zsh_history",
        "h19_pw",
        True,
        """
: 1717401101:0;kubectl -n api get pods
: 1717401190:0;PGPASSWORD={V} psql -h localhost -p 15432 -U quarry_admin quarry
: 1717401355:0;redis-cli -h localhost -p 16379 -a '{V2}' --user ratelimit INFO keyspace
: 1717401420:0;mysql -h legacy-billing.internal -u billing -p'{V3}' billing_v1 -e 'select count(*) from invoices'
: 1717401502:0;git status
""",
    ),
    _t(
        "dotfiles/ren/.docker/config.json",
        "h19_basic",
        True,
        """
{
  "auths": {
    "ghcr.io": {
      "auth": "{V}"
    },
    "registry.quarryline.dev": {
      "auth": "{V2}"
    }
  },
  "credsStore": ""
}
""",
    ),
    _t(
        "dotfiles/ren/.netrc",
        "h19_github_fine",
        True,
        """
machine github.com
  login ren-quarryline
  password {V}

machine api.github.com
  login ren-quarryline
  password {V2}
""",
    ),
    _t(
        "dotfiles/maya/.config/quarryline/config.toml",
        "h19_api_key",
        True,
        """
default_profile = "staging"

[profiles.prod]
api_key = "{V}"
base_url = "https://api.quarryline.dev/v1"

[profiles.staging]
api_key = "{V2}"
base_url = "https://api.staging.quarryline.dev/v1"
output = "table"
""",
    ),
    _t(
        "dotfiles/wen/.config/op/env.tpl",
        "h19_op_ref",
        False,
        """
# `op run --env-file ~/.config/op/env.tpl -- <cmd>` resolves these at runtime
QUARRYLINE_API_KEY="{V}"
CLOUDFLARE_API_TOKEN="op://Infra/Cloudflare/api-token"
""",
    ),
    _t(
        "dotfiles/wen/secrets.env.age",
        "h19_age_armor",
        False,
        """
{V}
""",
    ),
    _t(
        "scratch/maya/notebooks/churn_by_plan.ipynb",
        "h19_url_pw",
        True,
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pandas as pd\n",
    "import sqlalchemy as sa\n",
    "\n",
    "eng = sa.create_engine(\"postgresql+psycopg://analytics_ro:{V}@usage-prod-reporting.c9x2q1r8m0ab.us-east-1.rds.amazonaws.com/usage\")\n",
    "subs = pd.read_sql(\"select plan, status, canceled_at from subscriptions\", eng)"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 4,
   "metadata": {},
   "outputs": [
    {"output_type": "execute_result", "execution_count": 4, "data": {"text/plain": ["plan\ndeveloper    0.081\nteam         0.024\nName: churned, dtype: float64"]}, "metadata": {}}
   ],
   "source": ["subs.assign(churned=subs.status.eq(\"canceled\")).groupby(\"plan\").churned.mean()"]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "scratch/tobias/notes/2024-q3-vault-migration.md",
        "h19_vault_token",
        True,
        """
# Q3: move CI secrets from GH org secrets to Vault

- [x] stand up vault.internal.quarryline.dev (3 nodes, raft)
- [x] GitHub OIDC auth method, role `gh-release`
- [ ] migrate PYPI/NPM/NUGET/CARGO tokens
- [ ] delete org secrets

Root token from init (revoke once the admin policy works!!): `{V}`
My dev token for testing the policy: {V2}
""",
    ),
]
