"""Blind part ``tune26``: a mobile game studio, Pixelwharf Games (free-to-play titles on iOS,
Android and consoles). Files are game server code and config (Go and C# matchmaking and session
services, Nakama-style Lua/TS modules, Node lobby services, Redis/Postgres/ClickHouse), payments
(App Store / Google Play receipt validation, Stripe web shop, Xsolla), ads and attribution SDK
config (AdMob, AppLovin, Unity Ads, AppsFlyer, Adjust), analytics pipelines, build pipelines
(Fastlane, Gradle signing, Xcode export options, Unity Cloud Build, Unreal BuildGraph, Jenkins,
GitHub Actions, GitLab CI, Perforce), Unity and Unreal project files, community tooling (Discord
bots, Twitch integration, moderation scripts), infrastructure (Terraform, Kubernetes, Helm,
Compose, Ansible), runbooks, localisation tables, test fixtures and logs. Written blind (without
seeing the scanner, its rules or other parts' templates).

Look-alikes sit under the same key names: Unity asset GUIDs, Unreal GUIDs, Addressables hashes,
build and content hashes, receipt and order ids, AdMob app ids, Discord snowflakes and
application public keys, keystore fingerprints, Apple team and key ids, UUIDs that are ids,
placeholders, environment and secret-store references, encrypted values, password hashes,
public keys and certificates, redactions, documented example values and UI text about passwords.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import uuid
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


class Tune26Values(evalset.Values):
    """Value generators of the tune26 part; every name starts with ``t26_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "pixel",
            "wharf",
            "goblin",
            "lootbox",
            "respawn",
            "combo",
            "dungeon",
            "quest",
            "arcade",
            "joystick",
            "sprite",
            "boss",
            "raid",
            "tavern",
        ]
        self.users = [
            "matchmaker",
            "lobby",
            "payments",
            "analytics",
            "buildbot",
            "p4admin",
            "liveops",
            "discordbot",
            "leaderboard",
            "gameserver",
        ]

    # ------------------------------------------------------------------ helpers
    def _b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def _crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def _armor(self, label: str, nbytes: int) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    # ------------------------------------------------------------------ positives: passwords
    def t26_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*$"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 22), ALNUM + "!#%^*-_=+"
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Pw" + self.s(14, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(20, ALNUM)
        leet = word.replace("a", "4").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet.capitalize() + "@" + self.s(4, DIGITS)

    def t26_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Pixelwharf1",
                    "gamedev123",
                    "Password123!",
                    "changeme1",
                    "qwerty2024",
                    "letmein!",
                    "unity3d",
                    "Admin@123",
                    "pixel2023",
                ]
            )
        if shape == 1:
            return "Wharf" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2025", "!", "99"])
        return (
            self.pick(["Spring", "Summer", "Autumn", "Winter"])
            + str(self.rng.randrange(2019, 2026))
            + self.pick(["", "!"])
        )

    def t26_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 24), ALNUM + "-_.")

    def t26_b64_basic(self) -> str:
        user = self.pick([*self.users, "ci-bot", "jenkins"])
        return base64.b64encode(f"{user}:{self.t26_pw()}".encode()).decode()

    def t26_b64_pw(self) -> str:
        return base64.b64encode(self.t26_pw().encode()).decode()

    def t26_app_specific_pw(self) -> str:
        return "-".join(self.s(4, string.ascii_lowercase) for _ in range(4))

    # ------------------------------------------------------------------ positives: tokens
    def t26_generic_key(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.s(32, HEX)
        if shape == 1:
            return self.s(40, ALNUM)
        if shape == 2:
            return self._b64(32, urlsafe=True, pad=False)
        if shape == 3:
            return "pw_live_" + self.s(36, ALNUM)
        return self.s(48, LOWNUM)

    def t26_hex_secret(self) -> str:
        return self.s(self.rng.choice([64, 64, 96, 128]), HEX)

    def t26_b64_secret(self) -> str:
        return self._b64(self.rng.choice([32, 48, 64]))

    def t26_github(self) -> str:
        return self._crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t26_npm(self) -> str:
        return self._crc_token("npm")

    def t26_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t26_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t26_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def t26_discord_webhook(self) -> str:
        host = self.pick(["discord.com", "discordapp.com", "ptb.discord.com"])
        return f"https://{host}/api/webhooks/{self.s(18, DIGITS)}/{self.s(68, URLSAFE)}"

    def t26_discord_bot(self) -> str:
        uid = str(self.rng.randrange(10**17, 10**19))
        head = base64.b64encode(uid.encode()).decode().rstrip("=")
        return f"{head}.{self.s(6, URLSAFE)}.{self.s(38, URLSAFE)}"

    def t26_twitch_secret(self) -> str:
        return self.s(30, LOWNUM)

    def t26_stripe(self) -> str:
        return self.pick(["sk_live_", "rk_live_"]) + self.s(self.rng.choice([24, 99]), ALNUM)

    def t26_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def t26_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t26_aws_pair(self) -> str:
        return "AKIA" + self.s(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

    def t26_aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    def t26_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t26_fcm_server(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t26_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t26_twilio(self) -> str:
        return "SK" + self.s(32, HEX)

    def t26_hex32_key(self) -> str:
        return self.s(32, HEX)

    def t26_ga_secret(self) -> str:
        return self.s(40, HEX)

    def t26_aws_ini(self) -> str:
        return (
            f"aws_access_key_id = {self.t26_aws_pair()}\n"
            f"aws_secret_access_key = {self.t26_aws_secret()}"
        )

    def t26_aws_tf(self) -> str:
        return f'access_key = "{self.t26_aws_pair()}"\nsecret_key = "{self.t26_aws_secret()}"'

    def t26_steam_key(self) -> str:
        return self.s(32, HEXU)

    def t26_playfab_secret(self) -> str:
        return self.s(52, UPNUM)

    def t26_eos_secret(self) -> str:
        return self._b64(32, urlsafe=False, pad=False).replace("/", "x").replace("+", "y")[:43]

    def t26_appsflyer(self) -> str:
        return self.s(22, ALNUM)

    def t26_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        header = part({"alg": self.pick(["HS256", "HS512"]), "typ": "JWT"})
        payload = part(
            {
                "sub": self.pick(self.users),
                "aud": "pixelwharf",
                "iat": 1710000000 + self.rng.randrange(10**7),
            }
        )
        return f"{header}.{payload}.{self._b64(32, urlsafe=True, pad=False)}"

    def t26_pem_key(self) -> str:
        label = self.pick(
            ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"]
        )
        size = {"RSA PRIVATE KEY": 600, "PRIVATE KEY": 630, "EC PRIVATE KEY": 121}.get(label, 400)
        return self._armor(label, size)

    def t26_p8_key(self) -> str:
        return self._armor("PRIVATE KEY", 138)

    def t26_json_pem(self) -> str:
        return self._armor("PRIVATE KEY", 630).replace("\n", "\\n") + "\\n"

    def t26_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t26_sentry_auth(self) -> str:
        return "sntrys_" + self._b64(90, urlsafe=True, pad=False)

    def t26_pg_uri(self) -> str:
        user = self.pick(self.users)
        host = self.pick(["pg-main.internal", "10.40.2.17", "db.pixelwharf.net", "postgres"])
        return f"postgres://{user}:{self.t26_url_pw()}@{host}:5432/{self.pick(['game', 'economy', 'players'])}"

    def t26_redis_uri(self) -> str:
        scheme = self.pick(["redis", "rediss"])
        host = self.pick(["redis-mm.internal", "10.40.8.3", "cache.pixelwharf.net"])
        return f"{scheme}://:{self.t26_url_pw()}@{host}:6379/0"

    def t26_mongo_uri(self) -> str:
        return (
            f"mongodb+srv://{self.pick(self.users)}:{self.t26_url_pw()}"
            f"@cluster0.{self.s(5, LOWNUM)}.mongodb.net/telemetry?retryWrites=true"
        )

    def t26_amqp_uri(self) -> str:
        return f"amqp://{self.pick(self.users)}:{self.t26_url_pw()}@rabbit.internal:5672/%2Fgame"

    def t26_mssql_conn(self) -> str:
        return (
            f"Server=tcp:pw-sql.database.windows.net,1433;Database=economy;"
            f"User ID={self.pick(self.users)};Password={self.t26_pw()};Encrypt=True;"
        )

    def t26_azure_storage(self) -> str:
        return (
            f"DefaultEndpointsProtocol=https;AccountName=pwcrash{self.s(4, LOWNUM)};"
            f"AccountKey={self._b64(64)};EndpointSuffix=core.windows.net"
        )

    def t26_p4_ticket(self) -> str:
        return self.s(32, HEXU)

    # ------------------------------------------------------------------ negatives
    def t26_unity_guid(self) -> str:
        return self.s(32, HEX)

    def t26_unreal_guid(self) -> str:
        return "".join(self.s(8, HEXU) for _ in range(4))

    def t26_uuid_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t26_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(16)).hexdigest()

    def t26_sha1(self) -> str:
        return hashlib.sha1(self.rng.randbytes(16)).hexdigest()

    def t26_git_sha(self) -> str:
        return self.s(40, HEX)

    def t26_fingerprint(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(self.rng.choice([20, 32])))

    def t26_admob_id(self) -> str:
        sep = self.pick(["~", "/"])
        return f"ca-app-pub-{self.s(16, DIGITS)}{sep}{self.s(10, DIGITS)}"

    def t26_snowflake(self) -> str:
        return str(self.rng.randrange(10**17, 10**19))

    def t26_discord_pubkey(self) -> str:
        return self.s(64, HEX)

    def t26_apple_id(self) -> str:
        return self.s(10, UPNUM)

    def t26_order_id(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"GPA.{self.s(4, DIGITS)}-{self.s(4, DIGITS)}-{self.s(4, DIGITS)}-{self.s(5, DIGITS)}"
        if shape == 1:
            return str(self.rng.randrange(2 * 10**14, 3 * 10**14))
        return "pi_" + self.s(24, ALNUM)

    def t26_placeholder(self) -> str:
        return self.pick(
            [
                "changeme",
                "<YOUR_API_KEY>",
                "your-secret-here",
                "REPLACE_ME",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "${STEAM_WEB_API_KEY}",
                "{{ .Values.secret }}",
                "TODO: fill in",
                "********",
                "<redacted>",
                "dummy",
                "sk_test_XXXXXXXXXXXXXXXXXXXXXXXX",
                "",
                "null",
                "%PLAYFAB_SECRET%",
                "$(P4PASSWD)",
            ]
        )

    def t26_env_ref(self) -> str:
        return self.pick(
            [
                'os.environ["DISCORD_TOKEN"]',
                'os.getenv("STRIPE_SECRET_KEY")',
                "process.env.REDIS_PASSWORD",
                'Environment.GetEnvironmentVariable("PLAYFAB_SECRET")',
                'System.getenv("KEYSTORE_PASSWORD")',
                'ENV.fetch("APPSTORE_API_KEY")',
                'env::var("MATCHMAKER_TOKEN").unwrap()',
                "$env:P4PASSWD",
                "${{ secrets.ANDROID_KEYSTORE_PASSWORD }}",
                "${MATCH_PASSWORD}",
                'getenv("DB_PASSWORD")',
                "$(DB_PASSWORD)",
            ]
        )

    def t26_secret_ref(self) -> str:
        return self.pick(
            [
                "vault:secret/data/gameserver#redis_password",
                "arn:aws:secretsmanager:eu-west-1:412398765012:secret:prod/payments/stripe-Ab12Cd",
                "projects/pixelwharf-prod/secrets/discord-bot-token/versions/latest",
                "op://LiveOps/Steam Web API/credential",
                "keyvault://pw-kv-prod/playfab-secret",
                "sm://prod/matchmaking/jwt-signing",
            ]
        )

    def t26_bcrypt(self) -> str:
        return "$2b$" + self.pick(["10", "12"]) + "$" + self.s(53, "./" + ALNUM)

    def t26_argon2(self) -> str:
        return (
            f"$argon2id$v=19$m=65536,t=3,p=4${self._b64(16, pad=False)}${self._b64(32, pad=False)}"
        )

    def t26_encrypted(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return f"ENC[AES256_GCM,data:{self._b64(24)},iv:{self._b64(32)},tag:{self._b64(16)},type:str]"
        if shape == 1:
            return f"ENC({self._b64(32)})"
        if shape == 2:
            return "AgB" + self._b64(180)[:240]
        return "vault:v1:" + self._b64(48)

    def t26_ansible_vault(self) -> str:
        body = self.s(64 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t26_public_key(self) -> str:
        return self._armor("PUBLIC KEY", 294)

    def t26_certificate(self) -> str:
        return self._armor("CERTIFICATE", 780)

    def t26_ssh_pub(self) -> str:
        body = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + self.rng.randbytes(36)).decode()
        return f"ssh-ed25519 {body} {self.pick(self.users)}@buildmac"

    def t26_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "sk_live_****************",
                "ghp_****",
                "***",
                "<hidden>",
                "xoxb-REDACTED",
                "[FILTERED]",
                "••••••••",
            ]
        )

    def t26_i18n(self) -> str:
        return self.pick(
            [
                "Enter your password",
                "Mot de passe incorrect",
                "Passwort vergessen?",
                "Contraseña incorrecta",
                "パスワードが違います",
                "비밀번호를 입력하세요",
                "请输入密码",
                "Неверный пароль",
                "Senha muito curta",
                "Şifre en az 8 karakter olmalı",
                "Password dimenticata?",
                "รหัสผ่านไม่ถูกต้อง",
            ]
        )

    def t26_example_doc(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "https://user:password@example.com/db",
                "postgres://postgres:postgres@localhost:5432/test",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            ]
        )

    def t26_content_hash(self) -> str:
        return self.s(32, HEX)

    def t26_build_id(self) -> str:
        return self.pick(
            [
                f"{self.rng.randrange(1, 9)}.{self.rng.randrange(0, 40)}.{self.rng.randrange(0, 999)}",
                str(self.rng.randrange(10000, 999999)),
                f"CL-{self.rng.randrange(100000, 999999)}",
                f"++Pixelwharf+Release-5.{self.rng.randrange(1, 5)}",
            ]
        )

    def t26_sri(self) -> str:
        return "sha512-" + self._b64(64)

    def t26_nonce_id(self) -> str:
        return self.s(self.rng.choice([16, 20, 24]), LOWNUM)

    def t26_stripe_pk(self) -> str:
        return self.pick(["pk_live_", "pk_test_"]) + self.s(24, ALNUM)

    def t26_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def t26_key_name(self) -> str:
        return self.pick(
            [
                "STRIPE_SECRET_KEY",
                "discord_bot_token",
                "playfab-secret-key",
                "android-keystore-password",
                "APP_STORE_CONNECT_API_KEY",
                "redis_auth",
                "steam_webapi_key",
            ]
        )

    def t26_test_fake(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "test_password_123_not_real",
                "sk_test_fakefakefakefakefake",
                "dummy-discord-token",
                "unit-test-secret",
                "not-a-real-key",
            ]
        )


VALUES = Tune26Values

TEMPLATES: list[evalset.Template] = [
    # ------------------------------------------------------------------ game servers
    (
        "services/matchmaker/.env",
        """\
# matchmaker (Go) local overrides - do not commit prod values
MM_REGION=eu-central
MM_TICK_MS=250
MM_REDIS_ADDR=redis-mm.internal:6379
MM_REDIS_PASSWORD={V}
MM_MAX_TICKET_AGE=90s
""",
        "t26_pw",
        True,
    ),
    (
        "services/matchmaker/.env.example",
        """\
MM_REGION=eu-central
MM_REDIS_ADDR=localhost:6379
MM_REDIS_PASSWORD={V}
MM_JWT_SECRET={V2}
""",
        "t26_placeholder",
        False,
    ),
    (
        "services/matchmaker/internal/config/config.go",
        """\
package config

import "os"

type Config struct {
\tRedisAddr     string
\tRedisPassword string
\tSigningKey    []byte
}

func Load() Config {
\treturn Config{
\t\tRedisAddr:     getenv("MM_REDIS_ADDR", "localhost:6379"),
\t\tRedisPassword: os.Getenv("MM_REDIS_PASSWORD"),
\t\t// TODO(kaito): move to vault before soft launch in PH
\t\tSigningKey: []byte("{V}"),
\t}
}
""",
        "t26_hex_secret",
        True,
    ),
    (
        "services/matchmaker/internal/ticket/ticket_test.go",
        """\
package ticket

import "testing"

func TestTicketIDRoundTrip(t *testing.T) {
\tid := "{V}"
\ttk, err := Parse(id)
\tif err != nil {
\t\tt.Fatalf("parse %s: %v", id, err)
\t}
\tif tk.ID != "{V}" {
\t\tt.Fatal("mismatch")
\t}
}
""",
        "t26_uuid_id",
        False,
    ),
    (
        "services/session/appsettings.Production.json",
        """\
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "ConnectionStrings": {
    "Economy": "{V}"
  },
  "Session": { "IdleTimeoutSeconds": 600, "MaxPlayersPerShard": 2400 }
}
""",
        "t26_mssql_conn",
        True,
    ),
    (
        "services/session/appsettings.Development.json",
        """\
{
  "ConnectionStrings": {
    "Economy": "Server=localhost,1433;Database=economy;User ID=sa;Password={V};TrustServerCertificate=True"
  },
  "Session": { "IdleTimeoutSeconds": 60 }
}
""",
        "t26_weak_pw",
        True,
    ),
    (
        "services/session/src/Pixelwharf.Session/Auth/TokenIssuer.cs",
        """\
using System.Text;
using Microsoft.IdentityModel.Tokens;

namespace Pixelwharf.Session.Auth;

public sealed class TokenIssuer
{
    // Key comes from the secret store at boot; see Startup.cs
    private readonly SymmetricSecurityKey _key;

    public TokenIssuer(IConfiguration cfg)
    {
        var raw = {V};
        _key = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(raw));
    }
}
""",
        "t26_env_ref",
        False,
    ),
    (
        "services/session/src/Pixelwharf.Session/Auth/DevKeys.cs",
        """\
namespace Pixelwharf.Session.Auth;

internal static class DevKeys
{
#if DEBUG
    // shared with the Unity client debug build so local sessions validate
    public const string SessionHmacKey = "{V}";
#endif
}
""",
        "t26_b64_secret",
        True,
    ),
    (
        "services/lobby/src/config.ts",
        """\
import { z } from "zod";

const Env = z.object({
  LOBBY_PORT: z.coerce.number().default(7350),
  LOBBY_REDIS_URL: z.string().url(),
  LOBBY_ADMIN_KEY: z.string().min(24),
});

export const env = Env.parse(process.env);
export const defaults = {
  redisUrl: "{V}",
};
""",
        "t26_redis_uri",
        True,
    ),
    (
        "services/lobby/test/fixtures/players.json",
        """\
[
  { "playerId": "{V}", "name": "GoblinSlayer99", "mmr": 1432, "region": "eu" },
  { "playerId": "{V2}", "name": "xXrespawnXx", "mmr": 1388, "region": "eu" },
  { "playerId": "{V3}", "name": "tavernKeeper", "mmr": 1501, "region": "na" }
]
""",
        "t26_uuid_id",
        False,
    ),
    (
        "services/nakama/data/modules/economy.lua",
        """\
local nk = require("nakama")

-- server-to-server key for the receipt validator sidecar
local VALIDATOR_KEY = "{V}"

local function rpc_grant(context, payload)
  local body = nk.json_decode(payload)
  local res = nk.http_request("http://receipts:8080/grant", "POST",
    { ["X-Validator-Key"] = VALIDATOR_KEY }, nk.json_encode(body))
  return res
end

nk.register_rpc(rpc_grant, "economy_grant")
""",
        "t26_generic_key",
        True,
    ),
    (
        "services/nakama/local.yml",
        """\
name: pw-nakama-local
logger:
  level: DEBUG
session:
  token_expiry_sec: 7200
  encryption_key: "{V}"
  refresh_encryption_key: "{V2}"
socket:
  server_key: "defaultkey"
console:
  username: admin
  password: "{V3}"
""",
        "t26_pw",
        True,
    ),
    (
        "services/nakama/prod.yml.tmpl",
        """\
name: pw-nakama-{{ env "REGION" }}
session:
  encryption_key: "{V}"
  refresh_encryption_key: "{V2}"
runtime:
  http_key: "{V3}"
""",
        "t26_placeholder",
        False,
    ),
    (
        "services/leaderboard/src/main.rs",
        """\
use redis::Client;
use std::env;

fn redis_client() -> redis::RedisResult<Client> {
    let url = env::var("LEADERBOARD_REDIS_URL")
        .unwrap_or_else(|_| "{V}".to_string());
    Client::open(url)
}
""",
        "t26_redis_uri",
        True,
    ),
    (
        "services/leaderboard/Cargo.lock",
        """\
[[package]]
name = "redis"
version = "0.25.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"

[[package]]
name = "tokio"
version = "1.37.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V2}"
""",
        "t26_sha256",
        False,
    ),
    (
        "services/gameserver/Config/DedicatedServer.ini",
        """\
[/Script/Engine.GameSession]
MaxPlayers=12

[/Script/PixelwharfOnline.PWBackendSettings]
BackendUrl=https://api.pixelwharf.net/v2
ServerAuthSecret={V}
HeartbeatSeconds=15
""",
        "t26_generic_key",
        True,
    ),
    (
        "services/gameserver/Config/DefaultEngine.ini",
        """\
[/Script/EngineSettings.GeneralProjectSettings]
ProjectID={V}
ProjectName=Goblin Raid
CompanyName=Pixelwharf Games

[/Script/OnlineSubsystemUtils.IpNetDriver]
MaxClientRate=100000
""",
        "t26_unreal_guid",
        False,
    ),
    (
        "services/gameserver/Source/PixelwharfOnline/Private/PWBackendClient.cpp",
        """\
#include "PWBackendClient.h"
#include "Misc/ConfigCacheIni.h"

void UPWBackendClient::Init()
{
    FString Secret;
    GConfig->GetString(TEXT("/Script/PixelwharfOnline.PWBackendSettings"),
                       TEXT("ServerAuthSecret"), Secret, GGameIni);
    // never log the secret; only its hash for correlating with backend logs
    UE_LOG(LogPWBackend, Log, TEXT("backend secret sha1=%s"), TEXT("{V}"));
}
""",
        "t26_sha1",
        False,
    ),
    (
        "infra/k8s/gameserver/fleet.yaml",
        """\
apiVersion: agones.dev/v1
kind: Fleet
metadata:
  name: goblin-raid-eu
spec:
  replicas: 40
  template:
    spec:
      ports:
        - name: default
          containerPort: 7777
      template:
        spec:
          containers:
            - name: gameserver
              image: eu.gcr.io/pixelwharf-prod/goblin-raid-server:{V}
              env:
                - name: PW_BACKEND_SECRET
                  valueFrom:
                    secretKeyRef: { name: gs-backend, key: secret }
""",
        "t26_git_sha",
        False,
    ),
    (
        "infra/k8s/gameserver/secret-backend.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: gs-backend
  namespace: gameservers
type: Opaque
stringData:
  secret: "{V}"
  redis-password: "{V2}"
""",
        "t26_generic_key",
        True,
    ),
    (
        "infra/k8s/gameserver/secret-backend.sealed.yaml",
        """\
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: gs-backend
  namespace: gameservers
spec:
  encryptedData:
    secret: {V}
    redis-password: {V2}
""",
        "t26_encrypted",
        False,
    ),
    (
        "infra/k8s/matchmaker/secret.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: matchmaker
type: Opaque
data:
  MM_REDIS_PASSWORD: {V}
""",
        "t26_b64_pw",
        True,
    ),
    (
        "infra/helm/lobby/values-prod.yaml",
        """\
replicaCount: 6
image:
  repository: ghcr.io/pixelwharf/lobby
  tag: "{V}"
resources:
  limits: { cpu: "1", memory: 1Gi }
""",
        "t26_git_sha",
        False,
    ),
    (
        "infra/helm/lobby/values.yaml",
        """\
redis:
  enabled: false
  auth:
    existingSecret: lobby-redis
    existingSecretPasswordKey: {V}
lobby:
  adminKeySecretRef: {V2}
""",
        "t26_key_name",
        False,
    ),
    (
        "services/leaderboard/migrations/0007_seed_admins.sql",
        """\
-- seed moderator accounts for the leaderboard admin panel
INSERT INTO admins (email, password_hash, role) VALUES
  ('mod-lead@pixelwharf.net', '{V}', 'owner'),
  ('cm-eu@pixelwharf.net', '{V2}', 'moderator');
""",
        "t26_bcrypt",
        False,
    ),
    (
        "services/leaderboard/migrations/0002_roles.sql",
        """\
CREATE ROLE leaderboard_rw LOGIN PASSWORD '{V}';
GRANT SELECT, INSERT, UPDATE ON scores TO leaderboard_rw;
CREATE ROLE grafana_ro LOGIN PASSWORD '{V2}';
GRANT SELECT ON scores TO grafana_ro;
""",
        "t26_pw",
        True,
    ),
    (
        "services/analytics/clickhouse/users.d/ingest.xml",
        """\
<clickhouse>
  <users>
    <ingest>
      <password_sha256_hex>{V}</password_sha256_hex>
      <networks><ip>10.40.0.0/16</ip></networks>
      <profile>default</profile>
    </ingest>
  </users>
</clickhouse>
""",
        "t26_sha256",
        False,
    ),
]
TEMPLATES += [
    # ------------------------------------------------------------------ payments
    (
        "services/receipts/config/production.toml",
        """\
[server]
listen = "0.0.0.0:8080"

[apple]
issuer_id = "{V}"
bundle_id = "net.pixelwharf.goblinraid"
environment = "Production"

[google]
package_name = "net.pixelwharf.goblinraid"
""",
        "t26_uuid_id",
        False,
    ),
    (
        "services/receipts/config/keys/AuthKey_apple.p8",
        """\
{V}
""",
        "t26_p8_key",
        True,
    ),
    (
        "services/receipts/config/apple.yaml",
        """\
app_store_connect:
  key_id: {V}
  issuer_id: 69a6de8f-1b2c-47e3-e053-5b8c7c11a4d1
  team_id: {V2}
  private_key_path: /etc/receipts/AuthKey.p8
""",
        "t26_apple_id",
        False,
    ),
    (
        "services/receipts/config/play-service-account.json",
        """\
{
  "type": "service_account",
  "project_id": "pc-api-8812345678901234567-123",
  "private_key_id": "{V2}",
  "private_key": "{V}",
  "client_email": "receipt-validator@pc-api-8812345678901234567-123.iam.gserviceaccount.com",
  "client_id": "104928374650192837465",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
        "t26_json_pem",
        True,
    ),
    (
        "services/receipts/receipts/validate_test.py",
        """\
import pytest

from receipts.google import parse_purchase

SAMPLE = {
    "orderId": "{V}",
    "packageName": "net.pixelwharf.goblinraid",
    "productId": "gems_500",
    "purchaseState": 0,
}


def test_parse_purchase_keeps_order_id():
    p = parse_purchase(SAMPLE)
    assert p.order_id == "{V}"
""",
        "t26_order_id",
        False,
    ),
    (
        "services/receipts/receipts/stripe_shop.py",
        """\
import stripe

# web shop (gems bundles for PC players) - live key, rotate via #payments
stripe.api_key = "{V}"


def create_checkout(player_id: str, sku: str) -> str:
    session = stripe.checkout.Session.create(
        mode="payment",
        line_items=[{"price": sku, "quantity": 1}],
        client_reference_id=player_id,
        success_url="https://shop.pixelwharf.net/ok",
        cancel_url="https://shop.pixelwharf.net/cancel",
    )
    return session.url
""",
        "t26_stripe",
        True,
    ),
    (
        "services/receipts/receipts/webhooks.py",
        """\
import os

import stripe
from flask import Flask, abort, request

app = Flask(__name__)
ENDPOINT_SECRET = "{V}"


@app.post("/stripe/webhook")
def stripe_webhook():
    sig = request.headers.get("Stripe-Signature")
    try:
        event = stripe.Webhook.construct_event(request.data, sig, ENDPOINT_SECRET)
    except stripe.error.SignatureVerificationError:
        abort(400)
    return {"ok": True, "type": event["type"]}
""",
        "t26_stripe_whsec",
        True,
    ),
    (
        "web/shop/src/lib/stripe.ts",
        """\
import { loadStripe } from "@stripe/stripe-js";

// publishable key, safe to ship in the bundle
export const stripePromise = loadStripe("{V}");
""",
        "t26_stripe_pk",
        False,
    ),
    (
        "web/shop/.env.local",
        """\
NEXT_PUBLIC_SHOP_API=http://localhost:4000
STRIPE_SECRET_KEY={V}
XSOLLA_PROJECT_ID=248817
XSOLLA_API_KEY={V2}
""",
        "t26_generic_key",
        True,
    ),
    (
        "services/payments-xsolla/src/main/resources/application.yml",
        """\
spring:
  datasource:
    url: jdbc:postgresql://pg-main.internal:5432/payments
    username: payments
    password: ${PAYMENTS_DB_PASSWORD}
xsolla:
  merchant-id: 512398
  project-id: 248817
  api-key: ${XSOLLA_API_KEY:{V}}
  webhook-secret: ${XSOLLA_WEBHOOK_SECRET}
""",
        "t26_placeholder",
        False,
    ),
    (
        "services/payments-xsolla/src/main/resources/application-qa.yml",
        """\
spring:
  datasource:
    url: jdbc:postgresql://pg-qa.internal:5432/payments
    username: payments_qa
    password: {V}
""",
        "t26_weak_pw",
        True,
    ),
    (
        "services/payments-xsolla/src/main/kotlin/net/pixelwharf/payments/XsollaClient.kt",
        """\
package net.pixelwharf.payments

import okhttp3.Credentials
import okhttp3.OkHttpClient

class XsollaClient(private val merchantId: Long) {
    // merchant api uses basic auth merchantId:apiKey
    private val apiKey = "{V}"
    private val auth = Credentials.basic(merchantId.toString(), apiKey)
    private val http = OkHttpClient()
}
""",
        "t26_hex_secret",
        True,
    ),
    (
        "services/payments-xsolla/src/test/kotlin/XsollaWebhookTest.kt",
        """\
class XsollaWebhookTest {
    private val secret = "{V}"

    @Test
    fun `rejects bad signature`() {
        val sig = sign("{}", secret)
        assertFalse(verifier.verify("{}", sig + "x"))
    }
}
""",
        "t26_test_fake",
        False,
    ),
    (
        "docs/payments/refunds.md",
        """\
# Refund handling

When a player contacts support with a Google Play order id like `{V}`, look it up in
the payments dashboard before issuing anything. Apple transaction ids look like `{V2}`.

Never refund twice: the dashboard marks refunded orders with a red badge.
""",
        "t26_order_id",
        False,
    ),
    (
        "docs/payments/stripe-setup.md",
        """\
## Stripe keys

Local development uses Stripe test mode. Copy the test key from the Stripe docs, e.g.

```
STRIPE_SECRET_KEY={V}
```

Production keys live in Vault under `secret/payments/stripe` and are never pasted here.
""",
        "t26_example_doc",
        False,
    ),
    # ------------------------------------------------------------------ ads and attribution
    (
        "client/GoblinRaid/Assets/Resources/AdsSettings.asset",
        """\
%YAML 1.1
%TAG !u! tag:unity3d.com,2011:
--- !u!114 &11400000
MonoBehaviour:
  m_Name: AdsSettings
  admobAndroidAppId: {V}
  admobIosAppId: {V2}
  testMode: 0
""",
        "t26_admob_id",
        False,
    ),
    (
        "client/GoblinRaid/Assets/Plugins/Android/AndroidManifest.xml",
        """\
<manifest xmlns:android="http://schemas.android.com/apk/res/android"
          package="net.pixelwharf.goblinraid">
  <application>
    <meta-data android:name="com.google.android.gms.ads.APPLICATION_ID"
               android:value="{V}"/>
    <meta-data android:name="applovin.sdk.key"
               android:value="{V2}"/>
  </application>
</manifest>
""",
        "t26_admob_id",
        False,
    ),
    (
        "client/GoblinRaid/Assets/Scripts/Ads/AdsBootstrap.cs",
        """\
using UnityEngine;

public class AdsBootstrap : MonoBehaviour
{
    // AppsFlyer dev key (server S2S events also use it) - TODO move to remote config
    private const string AppsFlyerDevKey = "{V}";
    private const string AppleAppId = "1587712345";

    void Start()
    {
        AppsFlyerSDK.AppsFlyer.initSDK(AppsFlyerDevKey, AppleAppId, this);
        AppsFlyerSDK.AppsFlyer.startSDK();
    }
}
""",
        "t26_appsflyer",
        True,
    ),
    (
        "services/attribution/s2s/adjust_forwarder.py",
        """\
import requests

ADJUST_APP_TOKEN = "{V}"  # app token is an identifier, the S2S token is in vault
ADJUST_S2S_TOKEN = None


def forward(event_token: str, adid: str) -> None:
    requests.post(
        "https://s2s.adjust.com/event",
        data={"app_token": ADJUST_APP_TOKEN, "event_token": event_token, "adid": adid},
        timeout=5,
    )
""",
        "t26_nonce_id",
        False,
    ),
    (
        "services/attribution/s2s/.env",
        """\
ADJUST_APP_TOKEN=4w565xzmb54d
ADJUST_S2S_AUTH_TOKEN={V}
APPSFLYER_API_TOKEN={V2}
APPLOVIN_REPORT_KEY={V3}
""",
        "t26_generic_key",
        True,
    ),
    (
        "services/attribution/README.md",
        """\
# attribution

Forwards install and purchase events to AppsFlyer and Adjust.

| setting | where |
|---|---|
| AppsFlyer dev key | `{V}` |
| Adjust S2S token | `{V2}` |
| AppLovin report key | `{V3}` |
""",
        "t26_secret_ref",
        False,
    ),
    (
        "client/GoblinRaid/Assets/Plugins/FirebaseConfig/google-services.json",
        """\
{
  "project_info": {
    "project_number": "{V}",
    "project_id": "goblin-raid-prod",
    "storage_bucket": "goblin-raid-prod.appspot.com"
  },
  "client": [
    {
      "client_info": {
        "mobilesdk_app_id": "1:{V}:android:9f1e2d3c4b5a6978",
        "android_client_info": { "package_name": "net.pixelwharf.goblinraid" }
      }
    }
  ]
}
""",
        "t26_snowflake",
        False,
    ),
    (
        "services/push/fcm_legacy.js",
        """\
// legacy FCM sender, still used by the old Android build (v1.x players)
const SERVER_KEY = "{V}";

async function sendPush(token, title, body) {
  return fetch("https://fcm.googleapis.com/fcm/send", {
    method: "POST",
    headers: { Authorization: `key=${SERVER_KEY}`, "Content-Type": "application/json" },
    body: JSON.stringify({ to: token, notification: { title, body } }),
  });
}

module.exports = { sendPush };
""",
        "t26_fcm_server",
        True,
    ),
    (
        "services/push/config/prod.json",
        """\
{
  "fcm": { "projectId": "goblin-raid-prod", "credentials": "/var/run/secrets/fcm.json" },
  "apns": { "keyId": "{V}", "teamId": "{V2}", "topic": "net.pixelwharf.goblinraid" }
}
""",
        "t26_apple_id",
        False,
    ),
]
TEMPLATES += [
    # ------------------------------------------------------------------ analytics
    (
        "services/analytics/ingest/settings.py",
        """\
import os

KAFKA_BOOTSTRAP = "kafka-0.analytics:9093"
KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"
KAFKA_SASL_USERNAME = "ingest"
KAFKA_SASL_PASSWORD = os.environ.get("KAFKA_SASL_PASSWORD", "{V}")
GAMEANALYTICS_GAME_KEY = os.environ["GA_GAME_KEY"]
""",
        "t26_pw",
        True,
    ),
    (
        "services/analytics/ingest/gameanalytics.py",
        """\
import base64
import hashlib
import hmac

GA_SECRET_KEY = "{V}"


def sign(body: bytes) -> str:
    digest = hmac.new(GA_SECRET_KEY.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()
""",
        "t26_ga_secret",
        True,
    ),
    (
        "services/analytics/dbt/profiles.yml",
        """\
pixelwharf:
  target: prod
  outputs:
    prod:
      type: bigquery
      method: service-account
      project: pw-analytics
      dataset: marts
      keyfile: "{{ env_var('DBT_KEYFILE') }}"
    ch:
      type: clickhouse
      host: ch.analytics.internal
      user: dbt
      password: "{V}"
""",
        "t26_pw",
        True,
    ),
    (
        "services/analytics/dbt/models/marts/fct_purchases.sql",
        """\
-- player_key is sha256(player_id || salt) computed upstream; not reversible
select
    '{V}' as sample_player_key,
    date_trunc('day', purchased_at) as day,
    sum(price_usd) as revenue
from {{ ref('stg_purchases') }}
group by 1, 2
""",
        "t26_sha256",
        False,
    ),
    (
        "services/analytics/airflow/dags/daily_kpis.py",
        """\
from airflow import DAG
from airflow.providers.http.operators.http import SimpleHttpOperator

with DAG("daily_kpis", schedule="0 5 * * *", catchup=False) as dag:
    push = SimpleHttpOperator(
        task_id="post_to_slack",
        http_conn_id="slack_kpis",
        endpoint="{V}",
        data="{{ ti.xcom_pull('render') }}",
    )
""",
        "t26_slack_webhook",
        True,
    ),
    (
        "services/analytics/airflow/connections.env",
        """\
AIRFLOW_CONN_CLICKHOUSE_PROD=clickhouse://airflow:{V}@ch.analytics.internal:9000/default
AIRFLOW_CONN_SLACK_KPIS=http://:@hooks.slack.com/https
""",
        "t26_url_pw",
        True,
    ),
    (
        "services/analytics/notebooks/retention_d7.md",
        """\
# D7 retention deep dive (Goblin Raid soft launch, PH + CA)

Cohort table built from `events.session_start`. The experiment id for the new FTUE was
`{V}`; variant B improved D7 by 1.8pp.

```sql
select cohort_day, d7 from marts.retention where experiment_id = '{V}'
```
""",
        "t26_uuid_id",
        False,
    ),
    (
        "services/analytics/logs/ingest-2024-05-12.log",
        """\
2024-05-12T03:12:44Z INFO  consumer started group=ingest topic=events.raw
2024-05-12T03:12:45Z INFO  batch flushed rows=48211 checksum={V}
2024-05-12T03:12:51Z WARN  late events dropped=12 batch={V2}
2024-05-12T03:13:02Z INFO  batch flushed rows=50113 checksum={V3}
""",
        "t26_content_hash",
        False,
    ),
    # ------------------------------------------------------------------ build pipelines: iOS/Android
    (
        "client/GoblinRaid/fastlane/Fastfile",
        """\
default_platform(:ios)

platform :ios do
  lane :beta do
    api_key = app_store_connect_api_key(
      key_id: ENV["ASC_KEY_ID"],
      issuer_id: ENV["ASC_ISSUER_ID"],
      key_content: ENV["ASC_KEY_CONTENT"]
    )
    match(type: "appstore", readonly: true, api_key: api_key)
    build_app(scheme: "GoblinRaid")
    upload_to_testflight(api_key: api_key)
  end
end
# match password: {V}
""",
        "t26_env_ref",
        False,
    ),
    (
        "client/GoblinRaid/fastlane/.env.default",
        """\
FASTLANE_USER=builds@pixelwharf.net
FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD={V}
MATCH_GIT_URL=git@github.com:pixelwharf/ios-certificates.git
""",
        "t26_app_specific_pw",
        True,
    ),
    (
        "client/GoblinRaid/fastlane/Matchfile",
        """\
git_url("https://buildbot:{V}@github.com/pixelwharf/ios-certificates.git")
storage_mode("git")
type("appstore")
app_identifier(["net.pixelwharf.goblinraid"])
""",
        "t26_github",
        True,
    ),
    (
        "client/GoblinRaid/fastlane/Appfile",
        """\
app_identifier("net.pixelwharf.goblinraid")
apple_id("builds@pixelwharf.net")
itc_team_id("{V}")
team_id("{V2}")
""",
        "t26_apple_id",
        False,
    ),
    (
        "client/GoblinRaid/android/keystore.properties",
        """\
storeFile=../keys/goblinraid-upload.jks
storePassword={V}
keyAlias=upload
keyPassword={V}
""",
        "t26_pw",
        True,
    ),
    (
        "client/GoblinRaid/android/app/build.gradle.kts",
        """\
android {
    namespace = "net.pixelwharf.goblinraid"
    signingConfigs {
        create("release") {
            storeFile = file(System.getenv("UPLOAD_KEYSTORE") ?: "../keys/upload.jks")
            storePassword = {V}
            keyAlias = "upload"
            keyPassword = {V2}
        }
    }
}
""",
        "t26_env_ref",
        False,
    ),
    (
        "client/GoblinRaid/android/app/build.gradle",
        """\
android {
    signingConfigs {
        debugShared {
            storeFile file("../keys/debug-shared.keystore")
            storePassword "{V}"
            keyAlias "androiddebugkey"
            keyPassword "{V}"
        }
    }
}
""",
        "t26_weak_pw",
        True,
    ),
    (
        "client/GoblinRaid/android/keys/README.md",
        """\
# Signing keys

Upload key certificate fingerprints (register these in Play Console and Firebase):

- SHA-1: `{V}`
- SHA-256: `{V2}`

The keystore itself is in 1Password ("Android upload keystore").
""",
        "t26_fingerprint",
        False,
    ),
    (
        "client/GoblinRaid/ios/ExportOptions.plist",
        """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>method</key><string>app-store</string>
  <key>teamID</key><string>{V}</string>
  <key>provisioningProfiles</key>
  <dict>
    <key>net.pixelwharf.goblinraid</key><string>match AppStore net.pixelwharf.goblinraid</string>
  </dict>
</dict>
</plist>
""",
        "t26_apple_id",
        False,
    ),
    (
        "client/GoblinRaid/ios/GoblinRaid.xcodeproj/project.pbxproj",
        """\
\t\t{V} /* Release */ = {
\t\t\tisa = XCBuildConfiguration;
\t\t\tbuildSettings = {
\t\t\t\tPROVISIONING_PROFILE = "{V2}";
\t\t\t\tDEVELOPMENT_TEAM = QX7B2K9M4P;
\t\t\t};
\t\t\tname = Release;
\t\t};
""",
        "t26_unreal_guid",
        False,
    ),
    (
        ".github/workflows/android-release.yml",
        """\
name: android-release
on:
  push:
    tags: ["v*"]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: decode keystore
        run: echo "${{ secrets.UPLOAD_KEYSTORE_B64 }}" | base64 -d > upload.jks
      - name: build
        env:
          KEYSTORE_PASSWORD: {V}
          PLAY_JSON: ${{ secrets.PLAY_SERVICE_ACCOUNT_JSON }}
        run: ./gradlew bundleRelease
""",
        "t26_env_ref",
        False,
    ),
    (
        ".github/workflows/ios-testflight.yml",
        """\
name: ios-testflight
on: workflow_dispatch
jobs:
  build:
    runs-on: macos-14
    env:
      MATCH_PASSWORD: {V}
      FASTLANE_USER: builds@pixelwharf.net
    steps:
      - uses: actions/checkout@v4
      - run: bundle exec fastlane ios beta
""",
        "t26_pw",
        True,
    ),
    (
        ".github/workflows/unity-tests.yml",
        """\
name: unity-tests
on: [pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with: { lfs: true }
      - uses: game-ci/unity-test-runner@{V}
        env:
          UNITY_LICENSE: ${{ secrets.UNITY_LICENSE }}
          UNITY_EMAIL: ${{ secrets.UNITY_EMAIL }}
          UNITY_PASSWORD: ${{ secrets.UNITY_PASSWORD }}
""",
        "t26_git_sha",
        False,
    ),
    (
        "ci/unity-cloud-build/trigger.sh",
        """\
#!/usr/bin/env bash
set -euo pipefail
# Kick a Unity Cloud Build for the given target
UCB_API_KEY="{V}"
ORG=pixelwharf
PROJECT=goblin-raid
TARGET="${1:-android-release}"
curl -sf -X POST \\
  -H "Authorization: Basic ${UCB_API_KEY}" \\
  "https://build-api.cloud.unity3d.com/api/v1/orgs/${ORG}/projects/${PROJECT}/buildtargets/${TARGET}/builds"
""",
        "t26_hex32_key",
        True,
    ),
    (
        "ci/unity/activate-license.ps1",
        """\
param([string]$UnityPath = "C:\\Program Files\\Unity\\Hub\\Editor\\2022.3.21f1\\Editor\\Unity.exe")

$user = "builds@pixelwharf.net"
$pass = "{V}"
& $UnityPath -quit -batchmode -serial $env:UNITY_SERIAL -username $user -password $pass -logFile -
""",
        "t26_pw",
        True,
    ),
    (
        "ci/unity/activate-license.sh",
        """\
#!/bin/sh
# Runs on the linux build agents. Credentials are injected by Jenkins.
unity-editor -quit -batchmode -nographics \\
  -username "$UNITY_EMAIL" -password {V} -serial "$UNITY_SERIAL" -logFile /dev/stdout
""",
        "t26_env_ref",
        False,
    ),
    (
        "ci/jenkins/Jenkinsfile.unreal",
        """\
pipeline {
  agent { label 'win-ue5' }
  environment {
    P4USER = 'buildbot'
    P4PASSWD = credentials('p4-buildbot')
    STEAM_BUILDER_PASS = credentials('steam-builder')
  }
  stages {
    stage('BuildGraph') {
      steps {
        bat 'Engine\\\\Build\\\\BatchFiles\\\\RunUAT.bat BuildGraph -Script=Build/Graph.xml -Target="Ship Win64" -set:Changelist={V}'
      }
    }
  }
}
""",
        "t26_build_id",
        False,
    ),
    (
        "ci/jenkins/casc/jenkins.yaml",
        """\
credentials:
  system:
    domainCredentials:
      - credentials:
          - usernamePassword:
              scope: GLOBAL
              id: p4-buildbot
              username: buildbot
              password: "{V}"
          - string:
              scope: GLOBAL
              id: steam-builder
              secret: "{V2}"
""",
        "t26_pw",
        True,
    ),
    (
        "ci/jenkins/casc/jenkins.prod.yaml",
        """\
credentials:
  system:
    domainCredentials:
      - credentials:
          - usernamePassword:
              id: p4-buildbot
              username: buildbot
              password: "{V}"
""",
        "t26_encrypted",
        False,
    ),
    (
        "ci/perforce/p4config.txt",
        """\
P4PORT=ssl:perforce.pixelwharf.net:1666
P4USER=buildbot
P4CLIENT=buildbot-win-ue5-01
P4PASSWD={V}
P4CHARSET=utf8
""",
        "t26_pw",
        True,
    ),
    (
        "ci/perforce/p4tickets.txt",
        """\
perforce.pixelwharf.net:1666=buildbot:{V}
10.40.1.9:1666=p4admin:{V2}
""",
        "t26_p4_ticket",
        True,
    ),
    (
        "ci/perforce/trust.txt",
        """\
# p4 trust fingerprints for the build agents
ssl:perforce.pixelwharf.net:1666 {V}
ssl:perforce-edge-sg.pixelwharf.net:1666 {V2}
""",
        "t26_fingerprint",
        False,
    ),
    (
        "ci/steam/app_build_2451780.vdf",
        """\
"AppBuild"
{
\t"AppID" "2451780"
\t"Desc" "Goblin Raid PC {V}"
\t"BuildOutput" "..\\\\output\\\\"
\t"Depots"
\t{
\t\t"2451781" "depot_2451781.vdf"
\t}
}
""",
        "t26_build_id",
        False,
    ),
    (
        "ci/steam/upload.sh",
        """\
#!/usr/bin/env bash
# steamcmd upload, builder account has Steam Guard disabled (shared secret on the build mac)
steamcmd +login pixelwharf_builder '{V}' +run_app_build "$PWD/app_build_2451780.vdf" +quit
""",
        "t26_pw",
        True,
    ),
    (
        ".gitlab-ci.yml",
        """\
stages: [build, deploy]

variables:
  DOCKER_DRIVER: overlay2
  REGISTRY_PASSWORD: {V}

build-lobby:
  stage: build
  image: docker:24
  script:
    - docker login -u pw-ci -p "$REGISTRY_PASSWORD" registry.gitlab.com
    - docker build -t registry.gitlab.com/pixelwharf/lobby:$CI_COMMIT_SHA services/lobby
""",
        "t26_gitlab",
        True,
    ),
    (
        "ci/console/switch/nintendo-sdk.env",
        """\
NINTENDO_SDK_ROOT=D:\\NintendoSDK
NDI_USER=pixelwharf-ci
NDI_PASSWORD={V}
""",
        "t26_placeholder",
        False,
    ),
    (
        "ci/console/ps5/submit.ps1",
        """\
$ErrorActionPreference = "Stop"
$pkg = Get-ChildItem .\\out\\*.pkg | Select-Object -First 1
$headers = @{ Authorization = "Bearer {V}" }
Invoke-RestMethod -Uri "https://submissions.internal.pixelwharf.net/ps5" -Method Post -Headers $headers -InFile $pkg.FullName
""",
        "t26_jwt",
        True,
    ),
]
TEMPLATES += [
    # ------------------------------------------------------------------ Unity project
    (
        "client/GoblinRaid/Assets/Scripts/Net/BackendClient.cs.meta",
        """\
fileFormatVersion: 2
guid: {V}
MonoImporter:
  externalObjects: {}
  serializedVersion: 2
  defaultReferences: []
  executionOrder: 0
  userData:
""",
        "t26_unity_guid",
        False,
    ),
    (
        "client/GoblinRaid/Assets/Prefabs/UI/LoginPanel.prefab",
        """\
--- !u!114 &2291837465019283746
MonoBehaviour:
  m_Script: {fileID: 11500000, guid: {V}, type: 3}
  passwordField: {fileID: 5528193746501928374}
  showPasswordToggle: {fileID: 1029384756102938475}
  submitButton: {fileID: 8817263544019283746}
  m_Material: {fileID: 2100000, guid: {V2}, type: 2}
""",
        "t26_unity_guid",
        False,
    ),
    (
        "client/GoblinRaid/ProjectSettings/ProjectSettings.asset",
        """\
PlayerSettings:
  companyName: Pixelwharf Games
  productName: Goblin Raid
  productGUID: {V}
  AndroidKeystoreName: '{inproject}: keys/goblinraid-upload.jks'
  AndroidKeyaliasName: upload
  cloudProjectId: {V2}
  projectName: goblin-raid
""",
        "t26_unity_guid",
        False,
    ),
    (
        "client/GoblinRaid/Packages/packages-lock.json",
        """\
{
  "dependencies": {
    "com.unity.addressables": {
      "version": "1.21.19",
      "depth": 0,
      "source": "registry",
      "url": "https://packages.unity.com"
    },
    "com.pixelwharf.netcode": {
      "version": "https://github.com/pixelwharf/pw-netcode.git#v3.2.0",
      "depth": 0,
      "source": "git",
      "hash": "{V}"
    }
  }
}
""",
        "t26_git_sha",
        False,
    ),
    (
        "client/GoblinRaid/Packages/manifest.json",
        """\
{
  "scopedRegistries": [
    {
      "name": "pixelwharf",
      "url": "https://upm.pixelwharf.net",
      "scopes": ["com.pixelwharf"]
    }
  ],
  "dependencies": {
    "com.pixelwharf.netcode": "https://ci-read:{V}@github.com/pixelwharf/pw-netcode.git#v3.2.0",
    "com.unity.addressables": "1.21.19"
  }
}
""",
        "t26_github",
        True,
    ),
    (
        "client/GoblinRaid/.upmconfig.toml",
        """\
[npmAuth."https://upm.pixelwharf.net"]
token = "{V}"
alwaysAuth = true
""",
        "t26_npm",
        True,
    ),
    (
        "client/GoblinRaid/ServerData/Android/catalog_2024.05.12.hash",
        """\
{V}
""",
        "t26_content_hash",
        False,
    ),
    (
        "client/GoblinRaid/Assets/AddressableAssetsData/AddressableAssetSettings.asset",
        """\
MonoBehaviour:
  m_Name: AddressableAssetSettings
  m_DefaultGroup: {V}
  m_RemoteCatalogLoadPath:
    m_Id: {V2}
  m_ContentStateBuildPath: ServerData
""",
        "t26_unity_guid",
        False,
    ),
    (
        "client/GoblinRaid/Assets/Scripts/Net/BackendConfig.cs",
        """\
namespace Pixelwharf.GoblinRaid.Net
{
    public static class BackendConfig
    {
        public const string BaseUrl = "https://api.pixelwharf.net/v2";
        // client key: ships in every build, only identifies the title
        public const string TitleId = "{V}";
        public const string PhotonAppId = "{V2}";
    }
}
""",
        "t26_uuid_id",
        False,
    ),
    (
        "client/GoblinRaid/Assets/Editor/PlayFabUploader.cs",
        """\
using PlayFab;
using UnityEditor;

public static class PlayFabUploader
{
    [MenuItem("Pixelwharf/Upload Title Data")]
    public static void Upload()
    {
        PlayFabSettings.staticSettings.TitleId = "8F2A1";
        PlayFabSettings.staticSettings.DeveloperSecretKey = "{V}";
        TitleDataUploader.Run("Assets/Config/TitleData");
    }
}
""",
        "t26_playfab_secret",
        True,
    ),
    (
        "client/GoblinRaid/Assets/Tests/EditMode/SaveCryptoTests.cs",
        """\
using NUnit.Framework;

public class SaveCryptoTests
{
    private const string Key = "{V}";

    [Test]
    public void RoundTrip()
    {
        var enc = SaveCrypto.Encrypt("{\\"gems\\":50}", Key);
        Assert.AreEqual("{\\"gems\\":50}", SaveCrypto.Decrypt(enc, Key));
    }
}
""",
        "t26_test_fake",
        False,
    ),
    (
        "client/GoblinRaid/Assets/Scripts/Save/SaveCrypto.cs",
        """\
using System.Security.Cryptography;
using System.Text;

public static class SaveCrypto
{
    // obfuscation only; the save file AES key (same for all players)
    static readonly byte[] AesKey = System.Convert.FromBase64String("{V}");
}
""",
        "t26_b64_secret",
        True,
    ),
    # ------------------------------------------------------------------ Unreal project
    (
        "unreal/GoblinRaidPC/Config/DefaultEngine.ini",
        """\
[OnlineSubsystemEOS]
bEnabled=true

[/Script/OnlineSubsystemEOS.EOSSettings]
+Artifacts=(ArtifactName="GoblinRaidPC",ClientId="xyza78916AbcDeFgHiJkLmNoPqRsTu",ClientSecret="{V}",ProductId="3b1f9a4e2c0d4e8f9a1b2c3d4e5f6a7b",SandboxId="p-kq8zj2v6xw",DeploymentId="7c1e9f3a5b2d4c6e8f0a1b3c5d7e9f1a")
""",
        "t26_eos_secret",
        True,
    ),
    (
        "unreal/GoblinRaidPC/Config/DefaultGame.ini",
        """\
[/Script/EngineSettings.GeneralProjectSettings]
ProjectID={V}
ProjectVersion=1.4.2
CopyrightNotice=(c) Pixelwharf Games

[/Script/UnrealEd.ProjectPackagingSettings]
bEncryptPakIndex=True
""",
        "t26_unreal_guid",
        False,
    ),
    (
        "unreal/GoblinRaidPC/Config/DefaultCrypto.ini",
        """\
[/Script/CryptoKeys.CryptoKeysSettings]
EncryptionKey={V}
bEnablePakSigning=True
bEnablePakIndexEncryption=True
""",
        "t26_b64_secret",
        True,
    ),
    (
        "unreal/GoblinRaidPC/Plugins/PWTelemetry/Source/PWTelemetry/Private/PWTelemetryModule.cpp",
        """\
#include "PWTelemetryModule.h"

static const TCHAR* GTelemetryEndpoint = TEXT("https://telemetry.pixelwharf.net/ingest");
// public ingest key, identifies the build flavour only; server rejects it for reads
static const TCHAR* GTelemetryBuildKey = TEXT("{V}");

IMPLEMENT_MODULE(FPWTelemetryModule, PWTelemetry)
""",
        "t26_build_id",
        False,
    ),
    (
        "unreal/GoblinRaidPC/Build/Graph.xml",
        """\
<?xml version='1.0' ?>
<BuildGraph xmlns="http://www.epicgames.com/BuildGraph">
  <Option Name="Changelist" DefaultValue="0" Description="P4 CL"/>
  <Property Name="SentryAuthToken" Value="{V}"/>
  <Agent Name="Win64" Type="Win64">
    <Node Name="Ship Win64">
      <Command Name="BuildCookRun" Arguments="-project=GoblinRaidPC -platform=Win64 -pak -stage"/>
    </Node>
  </Agent>
</BuildGraph>
""",
        "t26_sentry_auth",
        True,
    ),
    (
        "unreal/GoblinRaidPC/Build/upload-symbols.bat",
        """\
@echo off
rem Uploads PDBs to Sentry after a shipping build
set SENTRY_ORG=pixelwharf
set SENTRY_PROJECT=goblin-raid-pc
set SENTRY_AUTH_TOKEN=%SENTRY_TOKEN_FROM_JENKINS%
sentry-cli debug-files upload --include-sources Binaries\\Win64
rem build id {V}
""",
        "t26_uuid_id",
        False,
    ),
    # ------------------------------------------------------------------ community: Discord, Twitch
    (
        "community/discord-bot/.env",
        """\
DISCORD_TOKEN={V}
DISCORD_GUILD_ID=981234567890123456
MOD_LOG_CHANNEL=1102938475610293847
""",
        "t26_discord_bot",
        True,
    ),
    (
        "community/discord-bot/bot.py",
        """\
import discord
from discord.ext import commands

intents = discord.Intents.default()
intents.message_content = True
bot = commands.Bot(command_prefix="!", intents=intents)

GUILD_ID = {V}
PATCH_NOTES_CHANNEL = {V2}


@bot.command()
async def patch(ctx):
    await ctx.send("Latest patch notes: https://goblinraid.gg/patch")
""",
        "t26_snowflake",
        False,
    ),
    (
        "community/discord-bot/src/index.ts",
        """\
import { Client, GatewayIntentBits } from "discord.js";

const client = new Client({ intents: [GatewayIntentBits.Guilds] });

client.once("ready", () => console.log(`logged in as ${client.user?.tag}`));
// hotfix during the launch weekend, revert to process.env.DISCORD_TOKEN
client.login("{V}");
""",
        "t26_discord_bot",
        True,
    ),
    (
        "community/discord-bot/interactions/verify.ts",
        """\
import { verifyKey } from "discord-interactions";

// application PUBLIC key from the developer portal (used to verify signatures)
const PUBLIC_KEY = "{V}";

export function isValid(body: string, sig: string, ts: string): boolean {
  return verifyKey(body, sig, ts, PUBLIC_KEY);
}
""",
        "t26_discord_pubkey",
        False,
    ),
    (
        "community/patch-notifier/notify.sh",
        """\
#!/usr/bin/env bash
# posts the patch notes to #announcements
WEBHOOK="{V}"
curl -sf -H 'Content-Type: application/json' \\
  -d "{\\"content\\": \\"Patch $1 is live!\\"}" "$WEBHOOK"
""",
        "t26_discord_webhook",
        True,
    ),
    (
        "community/patch-notifier/config.example.yaml",
        """\
targets:
  - name: announcements-en
    webhook: {V}
""",
        "t26_placeholder",
        False,
    ),
    (
        "community/twitch-drops/app/settings.rb",
        """\
module TwitchDrops
  SETTINGS = {
    client_id: ENV.fetch("TWITCH_CLIENT_ID"),
    client_secret: "{V}",
    redirect_uri: "https://drops.goblinraid.gg/auth/twitch/callback"
  }.freeze
end
""",
        "t26_twitch_secret",
        True,
    ),
    (
        "community/twitch-drops/config/database.yml",
        """\
production:
  adapter: postgresql
  url: <%= ENV["DATABASE_URL"] %>
  password: {V}
""",
        "t26_env_ref",
        False,
    ),
    (
        "community/moderation/ban_sync.php",
        """\
<?php
// syncs forum bans into the game ban list
$db = new PDO('mysql:host=forum-db.internal;dbname=forum', 'bansync', '{V}');
$stmt = $db->query('SELECT steam_id FROM bans WHERE synced = 0');
foreach ($stmt as $row) {
    ban_player($row['steam_id']);
}
""",
        "t26_pw",
        True,
    ),
    (
        "community/moderation/steam_lookup.py",
        """\
import requests

STEAM_KEY = "{V}"


def profile(steam_id: str) -> dict:
    r = requests.get(
        "https://api.steampowered.com/ISteamUser/GetPlayerSummaries/v2/",
        params={"key": STEAM_KEY, "steamids": steam_id},
        timeout=10,
    )
    return r.json()
""",
        "t26_steam_key",
        True,
    ),
    (
        "community/moderation/tests/test_steam_lookup.py",
        """\
from unittest import mock

import steam_lookup


@mock.patch("steam_lookup.STEAM_KEY", "{V}")
def test_profile(requests_mock):
    requests_mock.get("https://api.steampowered.com/ISteamUser/GetPlayerSummaries/v2/", json={})
    assert steam_lookup.profile("76561198000000000") == {}
""",
        "t26_test_fake",
        False,
    ),
    (
        "community/moderation/reports/export-2024-04.csv",
        """\
report_id,reported_player,reason,resolved_by
{V},76561198012345678,cheating,cm-eu
{V2},76561198087654321,toxicity,cm-na
{V3},76561198011112222,spam,cm-eu
""",
        "t26_uuid_id",
        False,
    ),
]
TEMPLATES += [
    # ------------------------------------------------------------------ infrastructure
    (
        "infra/terraform/envs/prod/main.tf",
        """\
provider "aws" {
  region     = "eu-west-1"
  {IV}
}
""",
        "t26_aws_tf",
        True,
    ),
    (
        "infra/terraform/envs/prod/backend.tf",
        """\
terraform {
  backend "s3" {
    bucket         = "pw-tfstate-prod"
    key            = "gameservers/terraform.tfstate"
    region         = "eu-west-1"
    dynamodb_table = "pw-tf-locks"
    kms_key_id     = "arn:aws:kms:eu-west-1:412398765012:key/{V}"
  }
}
""",
        "t26_uuid_id",
        False,
    ),
    (
        "infra/terraform/modules/rds/main.tf",
        """\
resource "aws_db_instance" "economy" {
  identifier        = "economy-${var.env}"
  engine            = "postgres"
  instance_class    = "db.r6g.large"
  username          = "economy_admin"
  password          = {V}
  storage_encrypted = true
}
""",
        "t26_secret_ref",
        False,
    ),
    (
        "infra/terraform/envs/staging/.terraform.lock.hcl",
        """\
provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.46.0"
  constraints = "~> 5.0"
  hashes = [
    "h1:{V}",
    "zh:{V2}",
  ]
}
""",
        "t26_sha256",
        False,
    ),
    (
        "infra/terraform/modules/datadog/variables.tf",
        """\
variable "datadog_api_key" {
  type      = string
  sensitive = true
  default   = "{V}"
}
""",
        "t26_hex32_key",
        True,
    ),
    (
        "infra/ansible/group_vars/buildagents/vault.yml",
        """\
{V}
""",
        "t26_ansible_vault",
        False,
    ),
    (
        "infra/ansible/group_vars/buildagents/main.yml",
        """\
p4_port: ssl:perforce.pixelwharf.net:1666
p4_user: buildbot
p4_password: "{{ vault_p4_password }}"
jenkins_agent_secret: "{V}"
xcode_versions: ["15.3", "15.4"]
""",
        "t26_hex_secret",
        True,
    ),
    (
        "infra/ansible/roles/macmini/tasks/keychain.yml",
        """\
- name: create build keychain
  command: security create-keychain -p "{V}" build.keychain
  no_log: true

- name: unlock build keychain
  command: security unlock-keychain -p "{V}" build.keychain
  no_log: true
""",
        "t26_weak_pw",
        True,
    ),
    (
        "infra/ansible/roles/macmini/files/authorized_keys",
        """\
{V}
{V2}
""",
        "t26_ssh_pub",
        False,
    ),
    (
        "infra/ansible/roles/macmini/files/id_ed25519_buildbot",
        """\
{V}
""",
        "t26_pem_key",
        True,
    ),
    (
        "infra/docker/compose.dev.yml",
        """\
services:
  postgres:
    image: postgres:16
    environment:
      POSTGRES_USER: game
      POSTGRES_PASSWORD: {V}
    ports: ["5432:5432"]
  redis:
    image: redis:7
    command: ["redis-server", "--requirepass", "{V2}"]
""",
        "t26_weak_pw",
        True,
    ),
    (
        "infra/docker/compose.prod.yml",
        """\
services:
  lobby:
    image: ghcr.io/pixelwharf/lobby:2.14.0
    environment:
      LOBBY_REDIS_URL: {V}
    secrets: [lobby_admin_key]
secrets:
  lobby_admin_key:
    file: /run/secrets/lobby_admin_key
""",
        "t26_env_ref",
        False,
    ),
    (
        "services/receipts/Dockerfile",
        """\
FROM python:3.12-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV STRIPE_API_BASE=https://api.stripe.com \\
    RECEIPTS_SIGNING_KEY={V}
CMD ["gunicorn", "-b", "0.0.0.0:8080", "receipts.app:app"]
""",
        "t26_b64_secret",
        True,
    ),
    (
        "services/lobby/Dockerfile",
        """\
FROM node:20-alpine@sha256:{V}
WORKDIR /srv
COPY package*.json ./
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc npm ci --omit=dev
COPY dist ./dist
CMD ["node", "dist/index.js"]
""",
        "t26_sha256",
        False,
    ),
    (
        "services/lobby/.npmrc",
        """\
@pixelwharf:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
""",
        "t26_github",
        True,
    ),
    (
        "services/lobby/package-lock.json",
        """\
{
  "name": "lobby",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/ioredis": {
      "version": "5.4.1",
      "resolved": "https://registry.npmjs.org/ioredis/-/ioredis-5.4.1.tgz",
      "integrity": "{V}"
    }
  }
}
""",
        "t26_sri",
        False,
    ),
    (
        "infra/k8s/monitoring/datadog-values.yaml",
        """\
datadog:
  site: datadoghq.eu
  apiKeyExistingSecret: datadog-secret
  clusterName: pw-prod-eu
  logs:
    enabled: true
  tags:
    - "team:liveops"
    - "build:{V}"
""",
        "t26_git_sha",
        False,
    ),
    (
        "infra/k8s/monitoring/datadog-secret.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: datadog-secret
  namespace: monitoring
stringData:
  api-key: {V}
  app-key: {V2}
""",
        "t26_hex32_key",
        True,
    ),
    (
        "infra/k8s/ingress/tls-goblinraid.yaml",
        """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: upstream-ca
data:
  ca.crt: |
    {IV}
""",
        "t26_certificate",
        False,
    ),
    (
        "infra/k8s/ingress/tls-secret.yaml",
        """\
apiVersion: v1
kind: Secret
metadata:
  name: goblinraid-gg-tls
type: kubernetes.io/tls
stringData:
  tls.key: |
    {IV}
""",
        "t26_pem_key",
        True,
    ),
    (
        "infra/k8s/external-secrets/payments.yaml",
        """\
apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: payments
spec:
  secretStoreRef: { name: aws-sm, kind: ClusterSecretStore }
  data:
    - secretKey: STRIPE_SECRET_KEY
      remoteRef:
        key: {V}
""",
        "t26_secret_ref",
        False,
    ),
    (
        "infra/vault/policies/gameserver.hcl",
        """\
path "secret/data/gameserver/*" {
  capabilities = ["read"]
}
# token accessor for the bootstrap token (not the token itself)
# accessor: {V}
""",
        "t26_nonce_id",
        False,
    ),
    (
        "infra/vault/bootstrap.sh",
        """\
#!/usr/bin/env bash
export VAULT_ADDR=https://vault.pixelwharf.net
export VAULT_TOKEN={V}
vault kv put secret/gameserver/redis password="$(openssl rand -hex 24)"
""",
        "t26_vault_token",
        True,
    ),
    (
        "infra/aws/credentials.buildmac",
        """\
[default]
{V}
region = eu-west-1
""",
        "t26_aws_ini",
        True,
    ),
    (
        "infra/aws/README.md",
        """\
# AWS access for build machines

Use SSO (`aws sso login --profile pw-build`). Never paste long-lived keys. The AWS docs
example key `{V}` is what you will see in tutorials; it does not work.
""",
        "t26_example_doc",
        False,
    ),
    (
        "infra/azure/crash-storage.env",
        """\
CRASH_UPLOAD_CONTAINER=minidumps
CRASH_STORAGE_CONNECTION={V}
""",
        "t26_azure_storage",
        True,
    ),
    (
        "infra/gcp/pixelwharf-prod-deployer.json",
        """\
{
  "type": "service_account",
  "project_id": "pixelwharf-prod",
  "private_key_id": "{V}",
  "client_email": "deployer@pixelwharf-prod.iam.gserviceaccount.com",
  "note": "key material removed 2024-03-02, use workload identity federation"
}
""",
        "t26_sha1",
        False,
    ),
]
TEMPLATES += [
    # ------------------------------------------------------------------ docs and runbooks
    (
        "docs/runbooks/matchmaker-redis-failover.md",
        """\
# Runbook: matchmaker Redis failover

1. Page #liveops-oncall.
2. Promote the replica: `redis-cli -h redis-mm-replica.internal -a '{V}' REPLICAOF NO ONE`
3. Update `MM_REDIS_ADDR` in the matchmaker config map and roll the deployment.
4. Post in #status that queues may be slow for ~2 minutes.
""",
        "t26_pw",
        True,
    ),
    (
        "docs/runbooks/leaderboard-reset.md",
        """\
# Season reset

Run the reset job with the admin token from Vault (`{V}`):

```bash
export LB_ADMIN_TOKEN=$(vault kv get -field=token secret/leaderboard/admin)
./lbctl reset --season 14
```
""",
        "t26_secret_ref",
        False,
    ),
    (
        "docs/runbooks/ja/ビルドサーバー.md",
        """\
# ビルドサーバーの運用

Mac mini (buildmac-03) のログイン情報:

- ユーザー: `buildbot`
- パスワード: `{V}`

キーチェーンのロック解除に同じパスワードを使います。変更したら #build に連絡してください。
""",
        "t26_pw",
        True,
    ),
    (
        "docs/runbooks/ja/ログイン画面.md",
        """\
# ログイン画面の仕様

- パスワード欄のプレースホルダー: 「{V}」
- 8文字未満の場合はエラーを表示する
- 「パスワードを表示」トグルを付ける
""",
        "t26_i18n",
        False,
    ),
    (
        "docs/runbooks/ko/결제-장애.md",
        """\
# 결제 장애 대응

스토어 웹훅 서명 검증 실패 시 아래 시크릿이 최신인지 확인합니다.

웹훅 시크릿: {V}

변경 후 receipts 서비스를 재시작하세요.
""",
        "t26_stripe_whsec",
        True,
    ),
    (
        "docs/runbooks/pt-BR/discord.md",
        """\
# Bot do Discord

O token do bot fica no cofre (`{V}`). Nunca cole o token no chat.
Para reiniciar: `kubectl -n community rollout restart deploy/discord-bot`.
""",
        "t26_secret_ref",
        False,
    ),
    (
        "docs/runbooks/es/servidor-qa.md",
        """\
# Servidor de QA

Acceso a la base de datos de QA:

    psql "{V}"

Pide acceso en #qa si no te funciona.
""",
        "t26_pg_uri",
        True,
    ),
    (
        "docs/onboarding/new-engineer.md",
        """\
# Welcome to Pixelwharf!

Your first week:

- Get Perforce access (ask #build). Your initial password will be `{V}`; you must change it on first login.
- Install Unity 2022.3 LTS via the Hub.
- Join the #goblin-raid channel.
""",
        "t26_weak_pw",
        True,
    ),
    (
        "docs/onboarding/accounts.md",
        """\
# Shared accounts

| account | user | password |
|---|---|---|
| App Store Connect (builds) | builds@pixelwharf.net | see 1Password |
| Google Play Console | play@pixelwharf.net | see 1Password |
| Steamworks builder | pixelwharf_builder | {V} |
""",
        "t26_redacted",
        False,
    ),
    (
        "docs/onboarding/vpn.md",
        """\
# VPN

The office VPN uses WireGuard. Your public key goes in the request form:

    {V}

Do not share the private key with anybody, including IT.
""",
        "t26_ssh_pub",
        False,
    ),
    (
        "docs/postmortems/2024-03-discord-token-leak.md",
        """\
# Postmortem: Discord bot token in a public gist

**Summary:** the community bot token was pasted in a public gist on 2024-03-08.
Token (revoked): `{V}`

**Action items:** move the token to Vault, add a pre-commit scanner, rotate quarterly.
""",
        "t26_discord_bot",
        True,
    ),
    (
        "docs/postmortems/2024-01-payments-outage.md",
        """\
# Postmortem: payments outage 2024-01-19

Affected orders (first three): `{V}`, `{V2}`, `{V3}`.
Root cause: receipts service rejected Google RTDN messages after a key rotation.
""",
        "t26_order_id",
        False,
    ),
    (
        "docs/sdk/apple-server-api.md",
        """\
# App Store Server API

A signed JWT for the API looks like this (example from our staging logs, token expired):

```
Authorization: Bearer {V}
```
""",
        "t26_jwt",
        True,
    ),
    (
        "docs/sdk/integrations.md",
        """\
# Third-party SDK keys

| SDK | key id | stored in |
|---|---|---|
| AppLovin MAX | sdk key | `{V}` |
| Unity Ads | game id 5512231 | n/a (public) |
| GameAnalytics | game key + secret | `{V2}` |
""",
        "t26_secret_ref",
        False,
    ),
    (
        "docs/sdk/example-connection.md",
        """\
# Connecting to the local stack

The default Compose stack uses throwaway credentials:

    DATABASE_URL={V}
""",
        "t26_example_doc",
        False,
    ),
    # ------------------------------------------------------------------ i18n
    (
        "client/GoblinRaid/Assets/Localization/strings_login.csv",
        """\
key,en,fr,de,ja
login.password.hint,Password,Mot de passe,Passwort,パスワード
login.password.error,"{V}","{V2}","{V3}","{V4}"
login.forgot,Forgot password?,Mot de passe oublié ?,Passwort vergessen?,パスワードをお忘れですか？
""",
        "t26_i18n",
        False,
    ),
    (
        "client/GoblinRaid/Assets/Localization/ko.json",
        """\
{
  "login.password.placeholder": "{V}",
  "login.token.expired": "{V2}",
  "shop.purchase.failed": "결제에 실패했습니다"
}
""",
        "t26_i18n",
        False,
    ),
    (
        "web/shop/src/locales/pt-BR.yml",
        """\
pt-BR:
  account:
    password_label: "Senha"
    password_error: "{V}"
    api_key_label: "Chave de API"
""",
        "t26_i18n",
        False,
    ),
    (
        "community/discord-bot/locales/es.ftl",
        """\
verify-prompt = Para verificar tu cuenta, escribe /verify
password-reset = {V}
token-expired = Tu enlace ha caducado
""",
        "t26_i18n",
        False,
    ),
    (
        "unreal/GoblinRaidPC/Content/Localization/Game/de/Game.po",
        """\
msgctxt "Login,PasswordError"
msgid "Wrong password"
msgstr "{V}"

msgctxt "Login,PasswordHint"
msgid "Password"
msgstr "Passwort"
""",
        "t26_i18n",
        False,
    ),
    # ------------------------------------------------------------------ logs
    (
        "services/lobby/logs/lobby-2024-05-11.log",
        """\
2024-05-11T19:02:11.443Z info  ws connected player=4471829 region=eu
2024-05-11T19:02:11.512Z debug auth header Authorization: Bearer {V}
2024-05-11T19:02:11.519Z info  joined lobby=ranked-eu-14 size=3
""",
        "t26_jwt",
        True,
    ),
    (
        "services/lobby/logs/lobby-2024-05-12.log",
        """\
2024-05-12T08:11:02.001Z info  ws connected player=8812734 region=na
2024-05-12T08:11:02.004Z debug auth header Authorization: Bearer {V}
2024-05-12T08:11:02.020Z info  joined lobby=casual-na-2 size=1
""",
        "t26_redacted",
        False,
    ),
    (
        "services/receipts/logs/receipts-error.log",
        """\
[2024-05-09 22:41:17,003] ERROR receipts.google: verify failed order={V} reason=PURCHASE_STATE_CANCELLED
[2024-05-09 22:41:19,551] ERROR receipts.google: verify failed order={V2} reason=NOT_FOUND
""",
        "t26_order_id",
        False,
    ),
    (
        "ci/jenkins/logs/unreal-ship-1842.log",
        """\
[2024-05-10 02:14:55] + p4 -p ssl:perforce.pixelwharf.net:1666 -u buildbot login
[2024-05-10 02:14:55] Enter password: ****
[2024-05-10 02:14:56] User buildbot logged in. ticket={V}
[2024-05-10 02:31:08] BUILD SUCCESSFUL
""",
        "t26_p4_ticket",
        True,
    ),
    (
        "ci/jenkins/logs/android-912.log",
        """\
> Task :app:validateSigningRelease
> Task :app:packageRelease
Signing with key alias 'upload', certificate SHA-256 {V}
BUILD SUCCESSFUL in 6m 12s
""",
        "t26_fingerprint",
        False,
    ),
    (
        "services/gameserver/logs/crash-2024-05-07.txt",
        """\
Fatal error: [File:Unknown] [Line: 0]
Crash GUID: {V}
CrashReportClient: upload id {V2}
Build: ++Pixelwharf+Release-5.3-CL-318822
""",
        "t26_unreal_guid",
        False,
    ),
]
