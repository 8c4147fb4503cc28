"""Blind part ``tune31``: a media and streaming company with an ad-tech arm, Lumenfield Media
(the Lumen+ streaming service, Lumenfield News, the Lumenfield Audio podcast network and
Lumenfield Ads, its programmatic ad business), with its contractors and agencies. Files are video
transcoding pipelines (ffmpeg wrappers, AWS Elemental and Bitmovin jobs, Mux uploads, HLS/DASH
packaging and key-info files), CDN configs (Akamai ``.edgerc`` and token auth, Fastly, Cloudflare,
CloudFront signed URLs, nginx secure_link and RTMP ingest), DRM and license servers (Widevine,
PlayReady, FairPlay, ClearKey, Axinom and DRMtoday integrations), content-management systems
(WordPress, Drupal, Strapi, Ghost, Contentful, Sanity), recommendation and analytics pipelines
(Airflow, Spark/Databricks, dbt, Snowflake, BigQuery, Kafka, notebooks), ad servers and real-time
bidding integrations (Prebid Server, OpenRTB bidders, Google Ad Manager, ads.txt, TCF consent),
social-media and publishing API clients (X/Twitter, Meta Graph, YouTube, LinkedIn, Reddit),
smart-TV and console apps (Tizen, webOS, Roku, Android TV, tvOS, PlayFab), newsroom tools (Slack
bots, wire ingest, Chartbeat), podcast hosting (Icecast, RSS feeds, R2/S3 storage, Podcast
Index), plus contractors' and agencies' repositories. Kinds: .env, YAML, TOML, INI, properties,
XML, JSON, Compose, Kubernetes/Helm, Terraform, CI files, Dockerfiles, shell/PowerShell, code and
tests in Python, Go, TypeScript/JavaScript, Java/Kotlin, C#, PHP, Ruby, Rust, Swift, BrightScript,
Lua, Elixir, SQL, notebooks, Markdown/HTML docs, runbooks, chat exports, tickets and logs.

Written blind (without seeing the scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same names: references to environment
variables and secret stores, placeholders and redactions, password hashes, encrypted values
(SOPS, Vault transit, KMS, Ansible Vault, sealed secrets), public material (certificates, public
and SSH keys, Mapbox ``pk.`` tokens, Datadog client tokens, Ghost content keys, Algolia search-only
keys), identifiers shaped like secrets (DRM key ids, PSSH boxes, HLS IVs, TCF consent strings,
ads.txt TAG ids, AdSense/AdMob ids, CloudFront key-pair ids, media ids, digests), UI text about
passwords and PINs, documented example credentials, credentials on documentation hosts, and test
values that say they are fake.
"""

from __future__ import annotations

import base64
import json
import string
import textwrap
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


class Tune31Values(evalset.Values):
    """Value generators of the tune31 part; every name starts with ``t31_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "premiere",
            "broadcast",
            "playlist",
            "spotlight",
            "headline",
            "soundbite",
            "montage",
            "jingle",
            "byline",
            "encore",
            "keyframe",
            "letterbox",
            "backlot",
            "teleprompt",
        ]
        self.users = [
            "cms_app",
            "transcoder",
            "adserver",
            "rtb_bidder",
            "recs",
            "newsroom",
            "podcast",
            "drm_proxy",
            "analytics",
            "cdn_purge",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t31_u_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def t31_u_crc(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t31_u_armor(self, label: str, nbytes: int) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t31_u_aws_id(self) -> str:
        return self.pick(["AKIA", "AKIA", "ASIA"]) + self.s(16, string.ascii_uppercase + "234567")

    def t31_u_aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def t31_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#$%*"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 22), ALNUM + "!#%^*-_=+."
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Lfm" + self.s(11, ALNUM) + self.pick(list("!#%@"))
        if shape == 4:
            return self.s(20, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + self.s(4, DIGITS)

    def t31_weak_pw(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.pick(
                [
                    "hackme",
                    "admin123",
                    "Password1",
                    "wowza123",
                    "rtmp2024",
                    "Lumen2024!",
                    "letmein!",
                    "streaming1",
                    "P@ssw0rd",
                ]
            )
        if shape == 1:
            return "Lumenfield" + str(self.rng.randrange(2016, 2027)) + self.pick(["", "!", "#"])
        return self.pick(self.words) + self.pick(["1", "123", "2025", "!"])

    def t31_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 24), ALNUM + "-_.")

    def t31_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ci", "pixelhaus-deploy"])
        return base64.b64encode(f"{user}:{self.t31_pw()}".encode()).decode()

    def t31_pin(self) -> str:
        return self.s(self.rng.choice([6, 8]), DIGITS)

    def t31_passphrase(self) -> str:
        return " ".join(self.pick(self.words) for _ in range(4)) + " " + self.s(2, DIGITS)

    # ------------------------------------------------------------------ positives: cloud/devops
    def t31_aws_env_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID={self.t31_u_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY={self.t31_u_aws_secret()}"
        )

    def t31_aws_ini_pair(self) -> str:
        return (
            f"aws_access_key_id = {self.t31_u_aws_id()}\n"
            f"aws_secret_access_key = {self.t31_u_aws_secret()}"
        )

    def t31_aws_yaml_pair(self) -> str:
        return f"access_key_id: {self.t31_u_aws_id()}\nsecret_access_key: {self.t31_u_aws_secret()}"

    def t31_aws_secret(self) -> str:
        return self.t31_u_aws_secret()

    def t31_s3a_pair(self) -> str:
        return (
            f"spark.hadoop.fs.s3a.access.key           {self.t31_u_aws_id()}\n"
            f"spark.hadoop.fs.s3a.secret.key           {self.t31_u_aws_secret()}"
        )

    def t31_r2_pair(self) -> str:
        return f'access_key_id = "{self.s(32, HEX)}"\nsecret_access_key = "{self.s(64, HEX)}"'

    def t31_github(self) -> str:
        return self.t31_u_crc(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def t31_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def t31_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t31_npm(self) -> str:
        return self.t31_u_crc("npm")

    def t31_dockerhub(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def t31_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t31_tfc(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def t31_azure_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t31_azure_conn(self) -> str:
        account = self.pick(["lfmmediaassets", "lumenplusvod", "lfmpodcastraw"])
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self.t31_u_b64(64)};EndpointSuffix=core.windows.net"
        )

    def t31_databricks(self) -> str:
        return "dapi" + self.s(32, HEX)

    def t31_datadog_api(self) -> str:
        return self.s(32, HEX)

    def t31_nr_license(self) -> str:
        return self.s(36, HEX) + "NRAL"

    def t31_hex32(self) -> str:
        return self.s(32, HEX)

    def t31_hex64(self) -> str:
        return self.s(64, HEX)

    def t31_b64key(self) -> str:
        return self.t31_u_b64(32)

    def t31_jwt_secret(self) -> str:
        return self.pick([self.s(48, ALNUM), self.t31_u_b64(48), self.s(64, HEX)])

    def t31_django_key(self) -> str:
        return self.s(50, LOWNUM + "!@#%^&*(-_=+)")

    def t31_rails_key(self) -> str:
        return self.s(128, HEX)

    def t31_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "iss": self.pick(["lfm-auth", "cms.lumenfield.tv", "adserver"]),
                "sub": self.pick(self.users),
                "role": self.pick(["service_role", "publisher", "admin"]),
                "iat": 1710000000 + self.rng.randrange(10**7),
                "exp": 2040000000 + self.rng.randrange(10**7),
            }
        )
        return f"{header}.{payload}.{self.t31_u_b64(32, urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ positives: keys
    def t31_rsa_key(self) -> str:
        return self.t31_u_armor("RSA PRIVATE KEY", 48 * 14)

    def t31_pkcs8(self) -> str:
        return self.t31_u_armor("PRIVATE KEY", 48 * 13)

    def t31_openssh(self) -> str:
        return self.t31_u_armor("OPENSSH PRIVATE KEY", 48 * 7)

    def t31_ec_key(self) -> str:
        return self.t31_u_armor("EC PRIVATE KEY", 121)

    def t31_p8_key(self) -> str:
        return self.t31_u_armor("PRIVATE KEY", 138)

    def t31_gcp_pem_escaped(self) -> str:
        return self.t31_u_armor("PRIVATE KEY", 48 * 16).replace("\n", "\\n") + "\\n"

    # ------------------------------------------------------------------ positives: SaaS tokens
    def t31_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t31_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}"
            f"/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"
        )

    def t31_discord_webhook(self) -> str:
        ident = self.rng.randrange(10**17, 10**19)
        return f"https://discord.com/api/webhooks/{ident}/{self.s(68, URLSAFE)}"

    def t31_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://lumenfield.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def t31_stripe(self) -> str:
        return self.pick(["sk_live_", "rk_live_"]) + self.s(self.rng.choice([24, 99]), ALNUM)

    def t31_stripe_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def t31_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t31_mailgun(self) -> str:
        return "key-" + self.s(32, HEX)

    def t31_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t31_google_oauth_secret(self) -> str:
        return "GOCSPX-" + self.s(28, URLSAFE)

    def t31_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t31_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def t31_twitter_bearer(self) -> str:
        return "A" * 22 + self.s(19, ALNUM) + "%2B" + self.s(24, ALNUM) + "%3D" + self.s(50, ALNUM)

    def t31_twitter_secret(self) -> str:
        return self.s(50, ALNUM)

    def t31_meta_token(self) -> str:
        return "EAA" + self.pick(["G", "B", "J", "I"]) + self.s(self.rng.randrange(160, 200), ALNUM)

    def t31_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t31_reddit_secret(self) -> str:
        return self.s(30, URLSAFE)

    def t31_linkedin_secret(self) -> str:
        return self.s(16, ALNUM)

    def t31_mux_secret(self) -> str:
        return self.s(75, ALNUM + "/+")

    def t31_contentful_cma(self) -> str:
        return "CFPAT-" + self.s(43, URLSAFE)

    def t31_sanity(self) -> str:
        return "sk" + self.s(180, ALNUM)

    def t31_ghost_admin(self) -> str:
        return f"{self.s(24, HEX)}:{self.s(64, HEX)}"

    def t31_wp_app_pw(self) -> str:
        return " ".join(self.s(4, ALNUM) for _ in range(6))

    def t31_wp_salt(self) -> str:
        return self.s(64, ALNUM + "!#$%&()*+,-./:;<=>?@[]^_`{|}~ ")

    def t31_edgerc(self) -> str:
        def akab() -> str:
            return f"akab-{self.s(16, LOWNUM)}-{self.s(16, LOWNUM)}"

        return (
            f"client_secret = {self.t31_u_b64(32)}\n"
            f"host = akab-{self.s(16, LOWNUM)}-{self.s(16, LOWNUM)}.luna.akamaiapis.net\n"
            f"access_token = {akab()}\n"
            f"client_token = {akab()}"
        )

    def t31_fastly(self) -> str:
        return self.s(32, URLSAFE)

    def t31_cloudflare(self) -> str:
        return self.s(40, URLSAFE)

    def t31_yt_stream_key(self) -> str:
        return "-".join(self.s(4, LOWNUM) for _ in range(5))

    def t31_twitch_stream_key(self) -> str:
        return f"live_{self.rng.randrange(10**8, 10**9)}_{self.s(30, ALNUM)}"

    def t31_drm_key(self) -> str:
        return self.s(32, HEX)

    def t31_clearkey_k(self) -> str:
        return self.t31_u_b64(16, urlsafe=True, pad=False)

    def t31_playfab(self) -> str:
        return self.s(52, UPNUM)

    def t31_mapbox_sk(self) -> str:
        head = base64.b64encode(
            json.dumps({"u": "lumenfield", "a": self.s(25, LOWNUM)}, separators=(",", ":")).encode()
        ).decode()
        return f"sk.{head.rstrip('=')}.{self.s(22, URLSAFE)}"

    def t31_podcastindex_secret(self) -> str:
        return self.s(40, ALNUM + "$^#")

    def t31_pubmatic_token(self) -> str:
        return self.s(32, LOWNUM)

    def t31_ttd_token(self) -> str:
        return self.s(self.rng.randrange(180, 220), ALNUM)

    def t31_bidder_token(self) -> str:
        return f"{self.s(8, HEX)}.{self.s(43, URLSAFE)}"

    def t31_heroku(self) -> str:
        return "HRKU-AA" + self.s(58, URLSAFE)

    # ------------------------------------------------------------------ negatives: references
    def t31_ref_conf(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${AKAMAI_CLIENT_SECRET:?missing}",
                "${MUX_TOKEN_SECRET:-}",
                "{{ .Values.cms.dbPassword }}",
                "{{ vault_wowza_admin_password }}",
                "%(ICECAST_SOURCE_PW)s",
                "%env(STRAPI_ADMIN_JWT_SECRET)%",
                "${file:/run/secrets/drm_signing_key}",
            ]
        )

    def t31_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["MUX_TOKEN_SECRET"]',
                'os.getenv("TWITTER_BEARER_TOKEN")',
                'settings.AKAMAI["client_secret"]',
                'Variable.get("snowflake_password")',
                'secrets_client.get_secret_value(SecretId="prod/drm/widevine")["SecretString"]',
                'dbutils.secrets.get(scope="recs", key="kafka-password")',
            ]
        )

    def t31_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.CONTENTFUL_MANAGEMENT_TOKEN",
                "process.env.PREBID_S2S_KEY ?? ''",
                "env('APP_KEYS')",
                "import.meta.env.VITE_MUX_ENV_KEY",
                "config.get('drm.axinom.communicationKey')",
                "await getSecret('ghost-admin-key')",
            ]
        )

    def t31_ref_go(self) -> str:
        return self.pick(
            [
                'os.Getenv("BIDDER_API_TOKEN")',
                "cfg.Exchange.Secret",
                'viper.GetString("license.signing_key")',
                'mustEnv("WIDEVINE_SIGNING_KEY")',
            ]
        )

    def t31_ref_jvm(self) -> str:
        return self.pick(
            [
                "${KAFKA_SASL_PASSWORD}",
                "${spring.datasource.password}",
                "${vault.cms.db-password}",
                "${env.NEXUS_PASSWORD}",
                "${DB_PASSWORD:}",
            ]
        )

    def t31_ref_cs(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("PLAYFAB_SECRET")',
                'configuration["PlayReady:KeySeed"]',
                'await secretClient.GetSecretAsync("playready-key-seed")',
            ]
        )

    def t31_ref_ci(self) -> str:
        return self.pick(
            [
                "${{ secrets.AKAMAI_CLIENT_SECRET }}",
                "${{ secrets.NPM_TOKEN }}",
                "$CI_REGISTRY_PASSWORD",
                "$(FASTLY_API_TOKEN)",
                "${SIGNING_KEY_PASSWORD}",
                "$BITBUCKET_DEPLOY_TOKEN",
            ]
        )

    def t31_ref_tf(self) -> str:
        return self.pick(
            [
                "var.fastly_api_key",
                "random_password.cms_db.result",
                "data.aws_secretsmanager_secret_version.drm.secret_string",
                'data.vault_generic_secret.cdn.data["token_key"]',
                "sensitive(var.cloudflare_api_token)",
            ]
        )

    def t31_ref_store(self) -> str:
        return self.pick(
            [
                "op://Streaming/Akamai EdgeGrid/client_secret",
                "vault:secret/data/drm/widevine#signing_key",
                "arn:aws:secretsmanager:us-east-1:381204556712:secret:prod/adserver/db-Xq3LpA",
                "@Microsoft.KeyVault(SecretUri=https://kv-lumenplus.vault.azure.net/secrets/playready-seed/)",
                "projects/lfm-data/secrets/bq-loader-key/versions/latest",
                "ssm:/prod/podcast/r2-secret",
            ]
        )

    def t31_ref_php(self) -> str:
        return self.pick(
            [
                "getenv('WORDPRESS_DB_PASSWORD')",
                "$_ENV['DRUPAL_DB_PASS']",
                "env('CHARTBEAT_API_KEY')",
                "Settings::get('hash_salt_file')",
            ]
        )

    def t31_ref_rb(self) -> str:
        return self.pick(
            [
                "ENV.fetch('REDDIT_CLIENT_SECRET')",
                "Rails.application.credentials.dig(:linkedin, :client_secret)",
                "ENV['PODCAST_S3_SECRET']",
            ]
        )

    # ------------------------------------------------------------------ negatives: redaction
    def t31_redacted(self) -> str:
        return self.pick(
            [
                "********",
                "[REDACTED]",
                "<redacted>",
                "•••••••••••",
                "***REMOVED***",
                "[filtered]",
                "xxxxxxxxxxxxxxxx",
                "<hidden>",
            ]
        )

    def t31_placeholder(self) -> str:
        return self.pick(
            [
                "<your-client-secret>",
                "YOUR_STREAM_KEY",
                "REPLACE_WITH_REAL_TOKEN",
                "changeme",
                "<paste token here>",
                "TODO-fill-in",
                "xxxx-xxxx-xxxx-xxxx-xxxx",
                "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX",
                "akab-XXXXXXXXXXXXXXXX-XXXXXXXXXXXXXXXX",
                "EAAxxxxxxxxxxxxxxxx",
            ]
        )

    def t31_fake(self) -> str:
        return self.pick(
            [
                "fake-mux-secret-for-tests",
                "test-only-not-a-real-key",
                "dummy_bearer_token_123",
                "FAKE_WIDEVINE_KEY_DO_NOT_USE",
                "unit-test-secret",
                "not-a-real-password",
                "00000000000000000000000000000000",
                "sk_test_fake_1234567890",
            ]
        )

    def t31_example_cred(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "password123 (example only)",
            ]
        )

    def t31_doc_pw(self) -> str:
        return self.pick(["secret", "password", "pass", "demo", "example", "s3cr3t"])

    # ------------------------------------------------------------------ negatives: hashes/enc
    def t31_hash(self) -> str:
        shape = self.rng.randrange(4)
        crypt = ALNUM + "./"
        if shape == 0:
            return "$2y$10$" + self.s(53, crypt)
        if shape == 1:
            salt = self.t31_u_b64(16, pad=False)
            return f"$argon2id$v=19$m=65536,t=4,p=1${salt}${self.t31_u_b64(32, pad=False)}"
        if shape == 2:
            return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self.t31_u_b64(32)}"
        return f"$6$rounds=5000${self.s(16, crypt)}${self.s(86, crypt)}"

    def t31_wp_hash(self) -> str:
        return "$P$B" + self.s(30, ALNUM + "./")

    def t31_sha256(self) -> str:
        return self.s(64, HEX)

    def t31_md5(self) -> str:
        return self.s(32, HEX)

    def t31_enc_blob(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            data = self.t31_u_b64(self.rng.randrange(16, 48))
            return f"ENC[AES256_GCM,data:{data},iv:{self.t31_u_b64(32)},tag:{self.t31_u_b64(16)},type:str]"
        if shape == 1:
            return "vault:v1:" + self.t31_u_b64(self.rng.randrange(40, 80))
        if shape == 2:
            return "AQICAHh" + self.t31_u_b64(150)[7:]
        return "ENC(" + self.t31_u_b64(self.rng.randrange(24, 48)) + ")"

    def t31_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t31_sealed(self) -> str:
        return "AgB" + self.t31_u_b64(400)

    # ------------------------------------------------------------------ negatives: public
    def t31_pubkey_body(self) -> str:
        return "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + self.t31_u_b64(258)[:348] + "IDAQAB"

    def t31_scram(self) -> str:
        def b64(n: int) -> str:
            return self.t31_u_b64(n)

        return f"SCRAM-SHA-512$4096:{b64(16)}${b64(64)}:{b64(64)}"

    def t31_cert(self) -> str:
        return self.t31_u_armor("CERTIFICATE", 48 * 15)

    def t31_pubkey(self) -> str:
        return self.t31_u_armor("PUBLIC KEY", 48 * 6)

    def t31_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
        )
        return f"ssh-ed25519 {body.decode()} {self.pick(self.users)}@lfm-build"

    def t31_pgp_pub(self) -> str:
        body = self.t31_u_b64(48 * 8)
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={self.t31_u_b64(3)}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def t31_mapbox_pk(self) -> str:
        head = base64.b64encode(
            json.dumps({"u": "lumenfield", "a": self.s(25, LOWNUM)}, separators=(",", ":")).encode()
        ).decode()
        return f"pk.{head.rstrip('=')}.{self.s(22, URLSAFE)}"

    def t31_dd_client_token(self) -> str:
        return "pub" + self.s(32, HEX)

    def t31_nr_browser(self) -> str:
        return "NRJS-" + self.s(19, HEX)

    def t31_ghost_content(self) -> str:
        return self.s(26, HEX)

    def t31_algolia_search(self) -> str:
        return self.s(32, HEX)

    def t31_oauth_client_id(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"
        if shape == 1:
            return self.s(14, UPNUM)  # LinkedIn-style app id
        return self.s(25, ALNUM)  # X/Twitter consumer (api) key id shown in public app settings

    # ------------------------------------------------------------------ negatives: identifiers
    def t31_kid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t31_kid_hex(self) -> str:
        return self.s(32, HEX)

    def t31_hls_iv(self) -> str:
        return "0x" + self.s(32, HEXU)

    def t31_pssh(self) -> str:
        box = (
            b"\x00\x00\x00\x44pssh\x00\x00\x00\x00"
            + bytes.fromhex("edef8ba979d64acea3c827dcd51d21ed")
            + b"\x00\x00\x00\x24\x08\x01\x12\x10"
            + self.rng.randbytes(16)
            + b"\x1a\x0dlumenfield-tv\x22\x01*"
        )
        return base64.b64encode(box).decode()

    def t31_tcf(self) -> str:
        return "CQ" + self.s(self.rng.randrange(90, 140), URLSAFE) + ".YAAAAAAAAAAA"

    def t31_tag_id(self) -> str:
        return self.s(16, HEX)

    def t31_pub_id(self) -> str:
        return "pub-" + self.s(16, DIGITS)

    def t31_admob_id(self) -> str:
        return f"ca-app-pub-{self.s(16, DIGITS)}~{self.s(10, DIGITS)}"

    def t31_ga_id(self) -> str:
        return self.pick(["G-" + self.s(10, UPNUM), "GTM-" + self.s(7, UPNUM)])

    def t31_media_id(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(11, URLSAFE)  # YouTube video id
        if shape == 1:
            return self.s(22, B62)  # Spotify show id
        if shape == 2:
            return self.s(13, DIGITS)  # Brightcove video id
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t31_cf_keypair_id(self) -> str:
        return "K" + self.s(13, UPNUM)

    def t31_git_sha(self) -> str:
        return self.s(40, HEX)

    def t31_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def t31_sri(self) -> str:
        return "sha512-" + self.t31_u_b64(64)

    def t31_trace(self) -> str:
        return self.s(32, HEX)

    def t31_request_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t31_nonce(self) -> str:
        return self.t31_u_b64(16)

    def t31_ui_text(self) -> str:
        return self.pick(
            [
                "Enter the 6-digit PIN shown on your TV",
                "Parental control PIN",
                "Your password must be at least 10 characters",
                "Forgot password?",
                "Stream key copied to clipboard",
                "Invalid or expired token",
                "Show password",
                "Sign in with your Lumen+ password",
            ]
        )

    def t31_i18n(self) -> str:
        return self.pick(
            [
                "Passwort vergessen?",
                "Contraseña incorrecta",
                "Mot de passe trop court",
                "Введите PIN-код",
                "パスワードを入力してください",
                "Senha inválida",
                "비밀번호를 잊으셨나요?",
                "Wachtwoord onjuist",
            ]
        )

    def t31_small(self) -> str:
        return self.pick(["8", "12", "3600", "86400", "true", "false"])


VALUES = Tune31Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = []

# ==================================================================== transcoding and CDN
TEMPLATES += [
    _t(
        "transcode/vod-pipeline/.env.production",
        "t31_pw",
        True,
        """
        # vod-pipeline (Lumen+ VOD ingest) -- production
        NODE_ENV=production
        PG_HOST=pg-vod-01.lfm.internal
        PG_USER=transcoder
        PG_PASSWORD={V}
        REDIS_URL=redis://:{V2}@redis-vod.lfm.internal:6379/2
        SEGMENT_DURATION=6
        LADDER=1080p,720p,480p,360p
        """,
    ),
    _t(
        "transcode/vod-pipeline/.env.example",
        "t31_placeholder",
        False,
        """
        NODE_ENV=development
        PG_HOST=localhost
        PG_USER=transcoder
        PG_PASSWORD={V}
        MUX_TOKEN_ID=
        MUX_TOKEN_SECRET={V2}
        SEGMENT_DURATION=6
        """,
    ),
    _t(
        "transcode/mux-uploader/src/mux.ts",
        "t31_mux_secret",
        True,
        """
        import Mux from '@mux/mux-node';

        // TODO(LP-2211): move to SSM before launch, this is the prod env token
        const mux = new Mux({
          tokenId: 'b1f2c7a0-5d43-4e1b-9c6f-6f0d2e8b3a11',
          tokenSecret: '{V}',
        });

        export async function createDirectUpload(corsOrigin: string) {
          return mux.video.uploads.create({
            cors_origin: corsOrigin,
            new_asset_settings: { playback_policy: ['signed'], encoding_tier: 'smart' },
          });
        }
        """,
    ),
    _t(
        "transcode/mux-uploader/src/config.ts",
        "t31_ref_js",
        False,
        """
        export const config = {
          mux: {
            tokenId: process.env.MUX_TOKEN_ID!,
            tokenSecret: {V},
          },
          signingKeyId: process.env.MUX_SIGNING_KEY_ID,
          maxUploadMb: 20480,
        };
        """,
    ),
    _t(
        "transcode/bitmovin/encode_job.py",
        "t31_kid",
        True,
        """
        \"\"\"Submits per-title encodes to Bitmovin for the Lumen+ back catalogue.\"\"\"
        from bitmovin_api_sdk import BitmovinApi

        # org-level API key of the lumenfield-encoding tenant
        bitmovin = BitmovinApi(api_key="{V}", tenant_org_id="3f6e1c2a-8b7d-4a90-b1e2-5d4c3b2a1f09")

        def start(input_path: str, title_id: str) -> str:
            enc = bitmovin.encoding.encodings.create(
                encoding=Encoding(name=f"title-{title_id}", cloud_region="AWS_EU_WEST_1")
            )
            return enc.id
        """,
    ),
    _t(
        "apps/web-player/src/player.js",
        "t31_kid",
        False,
        """
        // Bitmovin player licence key: domain-locked, shipped to every browser
        const playerConfig = {
          key: '{V}',
          analytics: { key: '{V2}', videoId: window.lfm.videoId },
          playback: { autoplay: false, muted: true },
        };
        const player = new bitmovin.player.Player(document.getElementById('player'), playerConfig);
        """,
    ),
    _t(
        "transcode/scripts/aes128_package.sh",
        "t31_drm_key",
        True,
        """
        #!/usr/bin/env bash
        # Package the trailer with AES-128 for the partner preview (LP-1988).
        # key agreed with the partner by email, do not rotate before 12/01
        set -euo pipefail
        KEY_HEX={V}
        echo -n "$KEY_HEX" | xxd -r -p > enc.key
        printf 'https://keys.lumenplus.tv/preview/enc.key\\nenc.key\\n%s\\n' "$(openssl rand -hex 16)" > enc.keyinfo
        ffmpeg -i master.mov -c:v libx264 -c:a aac -hls_time 6 \\
          -hls_key_info_file enc.keyinfo -hls_playlist_type vod out/index.m3u8
        """,
    ),
    _t(
        "transcode/samples/trailer_720p/index.m3u8",
        "t31_hls_iv",
        False,
        """
        #EXTM3U
        #EXT-X-VERSION:3
        #EXT-X-TARGETDURATION:6
        #EXT-X-MEDIA-SEQUENCE:0
        #EXT-X-PLAYLIST-TYPE:VOD
        #EXT-X-KEY:METHOD=AES-128,URI="https://keys.lumenplus.tv/preview/enc.key",IV={V}
        #EXTINF:6.000000,
        index0.ts
        #EXTINF:6.000000,
        index1.ts
        #EXT-X-KEY:METHOD=AES-128,URI="https://keys.lumenplus.tv/preview/enc.key",IV={V2}
        #EXTINF:4.160000,
        index2.ts
        #EXT-X-ENDLIST
        """,
    ),
    _t(
        "cdn/akamai/.edgerc",
        "t31_edgerc",
        True,
        """
        [default]
        {V}
        max_body = 131072

        [ccu]
        {V2}
        """,
    ),
    _t(
        "cdn/akamai/README.md",
        "t31_placeholder",
        False,
        """
        # Akamai tooling

        Purges and property activations go through the `akamai` CLI. Create `~/.edgerc`
        from the Control Center API client (ask #cdn-ops for access), it looks like:

        ```ini
        [default]
        client_secret = {V}
        host = akab-XXXXXXXXXXXXXXXX-XXXXXXXXXXXXXXXX.luna.akamaiapis.net
        access_token = {V2}
        client_token = {V3}
        ```

        Never commit the real file; `cdn/akamai/.gitignore` excludes it.
        """,
    ),
    _t(
        "cdn/akamai/token_auth.py",
        "t31_hex64",
        True,
        """
        import hashlib, hmac, time

        # EdgeAuth key for the lumenplus-vod property (Segmented Media Protection)
        EDGE_AUTH_KEY = "{V}"
        TOKEN_NAME = "hdnts"

        def sign(acl: str, window: int = 300) -> str:
            exp = int(time.time()) + window
            msg = f"exp={exp}~acl={acl}"
            mac = hmac.new(bytes.fromhex(EDGE_AUTH_KEY), msg.encode(), hashlib.sha256).hexdigest()
            return f"{TOKEN_NAME}={msg}~hmac={mac}"
        """,
    ),
    _t(
        "cdn/akamai/token_auth_test.py",
        "t31_fake",
        False,
        """
        from token_auth import sign_with

        FAKE_KEY = "{V}"  # not the property key; any string works for the format test

        def test_token_has_hmac():
            token = sign_with(FAKE_KEY, "/vod/*", window=60)
            assert "~hmac=" in token
        """,
    ),
    _t(
        "cdn/fastly/terraform/main.tf",
        "t31_fastly",
        True,
        """
        terraform {
          required_providers {
            fastly = { source = "fastly/fastly", version = "~> 5.7" }
          }
        }

        provider "fastly" {
          api_key = "{V}"
        }

        resource "fastly_service_vcl" "images" {
          name = "img.lumenfield.tv"
          domain { name = "img.lumenfield.tv" }
          backend {
            address = "lfm-images.s3.eu-west-1.amazonaws.com"
            name    = "s3_images"
            port    = 443
          }
        }
        """,
    ),
    _t(
        "cdn/fastly/terraform/providers.tf",
        "t31_ref_tf",
        False,
        """
        provider "fastly" {
          api_key = {V}
        }

        provider "cloudflare" {
          api_token = {V2}
        }
        """,
    ),
    _t(
        "cdn/cloudflare/purge.sh",
        "t31_cloudflare",
        True,
        """
        #!/bin/sh
        # purge news article pages after a correction is published
        ZONE=5c1e3b0a9f2d4e7c8b6a1d0e9f8c7b6a
        CF_API_TOKEN="{V}"
        for url in "$@"; do
          curl -s -X POST "https://api.cloudflare.com/client/v4/zones/$ZONE/purge_cache" \\
            -H "Authorization: Bearer $CF_API_TOKEN" \\
            -H "Content-Type: application/json" \\
            --data "{\\"files\\":[\\"$url\\"]}"
        done
        """,
    ),
    _t(
        "cdn/cloudfront/signer/keys/lumenplus-vod-signer.pem",
        "t31_rsa_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "cdn/cloudfront/signer/sign_url.go",
        "t31_cf_keypair_id",
        False,
        """
        package signer

        import (
        	"os"
        	"time"

        	"github.com/aws/aws-sdk-go-v2/feature/cloudfront/sign"
        )

        // KeyPairID is the public key id registered on the distribution's key group.
        const KeyPairID = "{V}"

        func SignPlaybackURL(url string) (string, error) {
        	key, err := sign.LoadPEMPrivKeyFile(os.Getenv("CF_SIGNER_KEY_PATH"))
        	if err != nil {
        		return "", err
        	}
        	s := sign.NewURLSigner(KeyPairID, key)
        	return s.Sign(url, time.Now().Add(4*time.Hour))
        }
        """,
    ),
    _t(
        "cdn/cloudfront/signer/public_key.pem",
        "t31_pubkey",
        False,
        """
        {V}
        """,
    ),
    _t(
        "cdn/nginx/conf.d/secure_vod.conf",
        "t31_url_pw",
        True,
        """
        server {
            listen 443 ssl http2;
            server_name vod-origin.lumenfield.tv;

            location /protected/ {
                secure_link $arg_md5,$arg_expires;
                secure_link_md5 "$secure_link_expires$uri$remote_addr {V}";
                if ($secure_link = "") { return 403; }
                if ($secure_link = "0") { return 410; }
                root /srv/vod;
            }
        }
        """,
    ),
    _t(
        "cdn/nginx/conf.d/rtmp_ingest.conf",
        "t31_ref_conf",
        False,
        """
        # rendered by confd; publish auth goes through the ingest-auth service
        rtmp {
            server {
                listen 1935;
                application live {
                    live on;
                    on_publish http://127.0.0.1:8088/auth;
                    # shared secret for ingest-auth, filled from {V}
                    hls on;
                    hls_path /tmp/hls;
                }
            }
        }
        """,
    ),
    _t(
        "live/obs/profiles/LumenNewsLive/service.json",
        "t31_yt_stream_key",
        True,
        """
        {
            "settings": {
                "bwtest": false,
                "key": "{V}",
                "server": "rtmp://a.rtmp.youtube.com/live2",
                "service": "YouTube - RTMPS"
            },
            "type": "rtmp_common"
        }
        """,
    ),
    _t(
        "live/restream/config.yml",
        "t31_twitch_stream_key",
        True,
        """
        # simulcast of the esports desk; primary ingest is our own wowza
        outputs:
          - name: twitch
            url: rtmp://live-fra.twitch.tv/app/{V}
          - name: youtube
            url: rtmp://a.rtmp.youtube.com/live2/${YOUTUBE_STREAM_KEY}
        """,
    ),
    _t(
        "live/restream/README.md",
        "t31_placeholder",
        False,
        """
        ## Adding a destination

        Each output is an RTMP URL with the stream key appended, e.g.

            rtmp://live-fra.twitch.tv/app/{V}

        Get the key from the channel's creator dashboard and put it in the
        `restream-keys` secret, not in `config.yml`.
        """,
    ),
    _t(
        "live/wowza/conf/admin.password",
        "t31_weak_pw",
        True,
        """
        # Admin password file (format [username][space][password][space][group])
        #username password group|group
        lfmadmin {V} admin
        restapi {V2} admin|advUser
        """,
    ),
    _t(
        "live/srt/srt-gateway.toml",
        "t31_passphrase",
        True,
        """
        [listener]
        port = 9000
        latency_ms = 120
        # AES-256 passphrase shared with the OB trucks
        passphrase = "{V}"
        pbkeylen = 32

        [output]
        url = "udp://10.40.2.15:5000"
        """,
    ),
]

# ==================================================================== DRM and license servers
TEMPLATES += [
    _t(
        "drm/license-proxy/config/widevine.yaml",
        "t31_hex64",
        True,
        """
        widevine:
          provider: lumenfield
          license_server_url: https://license.widevine.com/cenc/getlicense/lumenfield
          # AES-256 signing key and IV issued by Google for the lumenfield provider
          signing_key: "{V}"
          signing_iv: "{V2}"
          policy:
            rental_duration_seconds: 172800
            can_persist: true
        """,
    ),
    _t(
        "drm/license-proxy/config/widevine.staging.yaml",
        "t31_ref_conf",
        False,
        """
        widevine:
          provider: widevine_test
          license_server_url: https://license.uat.widevine.com/cenc/getlicense/widevine_test
          signing_key: "{V}"
          signing_iv: "{V2}"
        """,
    ),
    _t(
        "drm/license-proxy/internal/playready/keyseed.go",
        "t31_b64key",
        True,
        """
        package playready

        import "encoding/base64"

        // keySeed derives content keys from key ids (PlayReady key seed algorithm).
        // Production seed; the staging seed lives in Key Vault.
        var keySeed, _ = base64.StdEncoding.DecodeString("{V}")

        func ContentKey(kid [16]byte) []byte {
        	return deriveKey(keySeed, kid)
        }
        """,
    ),
    _t(
        "drm/license-proxy/internal/playready/keyseed_test.go",
        "t31_kid",
        False,
        """
        package playready

        import "testing"

        func TestContentKeyIsDeterministic(t *testing.T) {
        	kid := mustParseGUID("{V}")
        	a, b := ContentKey(kid), ContentKey(kid)
        	if string(a) != string(b) {
        		t.Fatal("derivation must be deterministic")
        	}
        	other := mustParseGUID("{V2}")
        	if string(ContentKey(other)) == string(a) {
        		t.Fatal("different kids must give different keys")
        	}
        }
        """,
    ),
    _t(
        "drm/fairplay/fps_config.properties",
        "t31_hex32",
        True,
        """
        # FairPlay Streaming key server - Lumen+ tvOS/iOS/Safari
        fps.certificate.path=/etc/fps/fairplay.cer
        fps.private.key.path=/etc/fps/privatekey.pem
        fps.private.key.passphrase={V}
        # Application Secret Key (ASK) from the Apple FPS deployment package
        fps.ask={V2}
        fps.lease.duration=86400
        """,
    ),
    _t(
        "drm/fairplay/fairplay.cer.pem",
        "t31_cert",
        False,
        """
        {V}
        """,
    ),
    _t(
        "drm/fairplay/privatekey.pem",
        "t31_rsa_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "drm/clearkey/festival-screener-keys.json",
        "t31_clearkey_k",
        True,
        """
        {
          "keys": [
            { "kty": "oct", "kid": "nrQFDeRLSAKTLifXUIPiZg", "k": "{V}" },
            { "kty": "oct", "kid": "FmY0xnWCPCNaSpRG-tUuTQ", "k": "{V2}" }
          ],
          "type": "temporary"
        }
        """,
    ),
    _t(
        "drm/packaging/shaka_package.sh",
        "t31_drm_key",
        True,
        """
        #!/usr/bin/env bash
        # Raw-key CENC packaging for the festival screener (no license server).
        set -e
        packager \\
          in=video_1080.mp4,stream=video,output=v1080.mp4 \\
          in=audio_en.mp4,stream=audio,output=a_en.mp4 \\
          --enable_raw_key_encryption \\
          --keys label=:key_id=8d2b6a1e4f3c4b7a9e0d1c2b3a4f5e6d:key={V} \\
          --protection_scheme cbcs \\
          --mpd_output screener.mpd
        """,
    ),
    _t(
        "drm/packaging/manifests/screener.mpd",
        "t31_pssh",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013" type="static" mediaPresentationDuration="PT1H52M4S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
          <Period id="0">
            <AdaptationSet contentType="video" segmentAlignment="true">
              <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cbcs" cenc:default_KID="8d2b6a1e-4f3c-4b7a-9e0d-1c2b3a4f5e6d"/>
              <ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed">
                <cenc:pssh>{V}</cenc:pssh>
              </ContentProtection>
              <Representation id="v1080" bandwidth="6000000" codecs="avc1.640028" width="1920" height="1080"/>
            </AdaptationSet>
          </Period>
        </MPD>
        """,
    ),
    _t(
        "drm/axinom/appsettings.json",
        "t31_b64key",
        True,
        """
        {
          "Axinom": {
            "TenantId": "6a1f3c2e-9d4b-4e8a-b7c6-0f1e2d3c4b5a",
            "CommunicationKeyId": "c2d7e8f1-4a3b-4c5d-9e8f-7a6b5c4d3e2f",
            "CommunicationKey": "{V}",
            "LicenseServiceUrl": "https://drm-widevine-licensing.axprod.net/AcquireLicense"
          },
          "Logging": { "LogLevel": { "Default": "Information" } }
        }
        """,
    ),
    _t(
        "ops/apt/lumenfield-archive-keyring.asc",
        "t31_pgp_pub",
        False,
        """
        {V}
        """,
    ),
    _t(
        "drm/drmtoday/callback_server.rb",
        "t31_pw",
        True,
        """
        require 'sinatra'
        require 'json'

        # DRMtoday upfront-auth: castLabs merchant "lumenfield", API user for key ingest
        DRMTODAY_USER = 'api-ingest@lumenfield.tv'
        DRMTODAY_PASSWORD = '{V}'

        post '/drmtoday/callback' do
          payload = JSON.parse(request.body.read)
          halt 403 unless entitled?(payload['user'], payload['asset'])
          { accountingId: SecureRandom.uuid, profile: { rental: { absoluteExpiration: expiry } } }.to_json
        end
        """,
    ),
    _t(
        "drm/drmtoday/callback_server_spec.rb",
        "t31_fake",
        False,
        """
        require_relative '../callback_server'

        RSpec.describe 'callback' do
          before { stub_const('DRMTODAY_PASSWORD', '{V}') }

          it 'refuses an asset the user has not bought' do
            post '/drmtoday/callback', { user: 'u-1', asset: 'a-404' }.to_json
            expect(last_response.status).to eq(403)
          end
        end
        """,
    ),
    _t(
        "drm/key-service/k8s/deployment.yaml",
        "t31_ref_store",
        False,
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: key-service
          namespace: drm
          annotations:
            secrets.lumenfield.tv/widevine-signing-key: "{V}"
            secrets.lumenfield.tv/playready-seed: "{V2}"
        spec:
          replicas: 3
          template:
            spec:
              containers:
                - name: key-service
                  image: registry.lfm.internal/drm/key-service:4.12.1
                  envFrom:
                    - secretRef:
                        name: key-service-secrets
        """,
    ),
    _t(
        "drm/key-service/k8s/secret.yaml",
        "t31_hex64",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: key-service-secrets
          namespace: drm
        type: Opaque
        stringData:
          WIDEVINE_SIGNING_KEY: "{V}"
          KEY_WRAPPING_KEY: "{V2}"
        """,
    ),
    _t(
        "drm/key-service/k8s/sealed-secret.yaml",
        "t31_sealed",
        False,
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: key-service-secrets
          namespace: drm
        spec:
          encryptedData:
            WIDEVINE_SIGNING_KEY: {V}
            KEY_WRAPPING_KEY: {V2}
        """,
    ),
    _t(
        "drm/key-service/db/seed_content_keys.sql",
        "t31_kid_hex",
        False,
        """
        -- key ids only; the keys themselves are generated by the KMS on first request
        INSERT INTO content_key (kid, title_id, track_type, created_at) VALUES
          ('{V}', 'tt-0091244', 'SD', now()),
          ('{V2}', 'tt-0091244', 'HD', now()),
          ('{V3}', 'tt-0091244', 'AUDIO', now());
        """,
    ),
]

# ==================================================================== content management
TEMPLATES += [
    _t(
        "cms/wordpress-news/wp-config.php",
        "t31_pw",
        True,
        """
        <?php
        /** Lumenfield News - WordPress VIP fallback stack */
        define( 'DB_NAME', 'lfm_news' );
        define( 'DB_USER', 'wp_news' );
        define( 'DB_PASSWORD', '{V}' );
        define( 'DB_HOST', 'mysql-news.lfm.internal' );
        define( 'DB_CHARSET', 'utf8mb4' );

        define( 'WP_REDIS_PASSWORD', '{V2}' );
        $table_prefix = 'lfm_';
        define( 'WP_DEBUG', false );
        require_once ABSPATH . 'wp-settings.php';
        """,
    ),
    _t(
        "cms/wordpress-news/wp-config-salts.php",
        "t31_wp_salt",
        True,
        """
        <?php
        define('AUTH_KEY',         '{V}');
        define('SECURE_AUTH_KEY',  '{V2}');
        define('LOGGED_IN_KEY',    '{V3}');
        define('NONCE_KEY',        '{V4}');
        """,
    ),
    _t(
        "cms/wordpress-news/wp-config-docker.php",
        "t31_ref_php",
        False,
        """
        <?php
        define( 'DB_NAME', getenv('WORDPRESS_DB_NAME') ?: 'wordpress' );
        define( 'DB_USER', getenv('WORDPRESS_DB_USER') ?: 'wordpress' );
        define( 'DB_PASSWORD', {V} );
        define( 'AUTH_KEY', {V2} );
        """,
    ),
    _t(
        "cms/wordpress-news/tools/import_wire.sh",
        "t31_wp_app_pw",
        True,
        """
        #!/bin/bash
        # pushes AP wire drafts into WP via the REST API (application password of user "wirebot")
        WP_USER=wirebot
        WP_APP_PASSWORD="{V}"
        curl -s -u "$WP_USER:$WP_APP_PASSWORD" \\
          -H 'Content-Type: application/json' \\
          -d @"$1" https://news.lumenfield.tv/wp-json/wp/v2/posts
        """,
    ),
    _t(
        "cms/wordpress-news/db/users_export.sql",
        "t31_wp_hash",
        False,
        """
        -- staging refresh, PII columns masked (LFM-SEC-104)
        INSERT INTO `lfm_users` (`ID`,`user_login`,`user_pass`,`user_email`,`user_status`) VALUES
        (1,'lfm-admin','{V}','web-admin@lumenfield.tv',0),
        (14,'wirebot','{V2}','wirebot@lumenfield.tv',0),
        (37,'j.okafor','{V3}','masked+37@lumenfield.tv',0);
        """,
    ),
    _t(
        "cms/drupal-corporate/web/sites/default/settings.local.php",
        "t31_pw",
        True,
        """
        <?php
        $databases['default']['default'] = [
          'database' => 'corporate',
          'username' => 'drupal',
          'password' => '{V}',
          'host' => 'mariadb-corp.lfm.internal',
          'port' => '3306',
          'driver' => 'mysql',
          'prefix' => '',
        ];
        $settings['hash_salt'] = '{V2}';
        $settings['trusted_host_patterns'] = ['^corporate\\.lumenfield\\.com$'];
        """,
    ),
    _t(
        "cms/drupal-corporate/web/sites/default/settings.php",
        "t31_ref_php",
        False,
        """
        <?php
        $databases['default']['default'] = [
          'database' => 'corporate',
          'username' => 'drupal',
          'password' => {V},
          'host' => getenv('DRUPAL_DB_HOST'),
          'driver' => 'mysql',
        ];
        $settings['hash_salt'] = {V2};
        if (file_exists($app_root . '/' . $site_path . '/settings.local.php')) {
          include $app_root . '/' . $site_path . '/settings.local.php';
        }
        """,
    ),
    _t(
        "cms/strapi-shows/.env",
        "t31_b64key",
        True,
        """
        HOST=0.0.0.0
        PORT=1337
        APP_KEYS={V},{V2}
        API_TOKEN_SALT={V3}
        ADMIN_JWT_SECRET={V4}
        DATABASE_CLIENT=postgres
        DATABASE_HOST=pg-cms.lfm.internal
        DATABASE_NAME=shows
        """,
    ),
    _t(
        "ops/bastion/authorized_keys",
        "t31_ssh_pub",
        False,
        """
        # managed by ansible role bastion-users -- local edits are overwritten
        {V}
        {V2}
        from="10.40.0.0/16" {V3}
        """,
    ),
    _t(
        "cms/strapi-shows/database/users.json",
        "t31_hash",
        False,
        """
        [
          {"id": 1, "email": "cms-admin@lumenfield.tv", "firstname": "CMS", "password": "{V}", "isActive": true},
          {"id": 2, "email": "editor.uk@lumenfield.tv", "firstname": "Priya", "password": "{V2}", "isActive": true}
        ]
        """,
    ),
    _t(
        "cms/ghost-audio-blog/scripts/publish.mjs",
        "t31_ghost_admin",
        True,
        """
        import GhostAdminAPI from '@tryghost/admin-api';

        const api = new GhostAdminAPI({
          url: 'https://blog.lumenfieldaudio.com',
          key: '{V}',
          version: 'v5.0',
        });

        export async function publishEpisodeNotes(ep) {
          return api.posts.add({ title: ep.title, html: ep.notesHtml, status: 'published' }, { source: 'html' });
        }
        """,
    ),
    _t(
        "cms/ghost-audio-blog/theme/partials/search.hbs",
        "t31_ghost_content",
        False,
        """
        {{!-- Content API key is read-only and public; it is embedded in every page --}}
        <script
          src="https://cdn.jsdelivr.net/npm/@tryghost/sodo-search@~1.1/umd/sodo-search.min.js"
          data-key="{V}"
          data-styles="https://cdn.jsdelivr.net/npm/@tryghost/sodo-search@~1.1/umd/main.css"
          data-sodo-search="https://blog.lumenfieldaudio.com/"
          async></script>
        """,
    ),
    _t(
        "cms/contentful-migrations/scripts/run-migration.sh",
        "t31_contentful_cma",
        True,
        """
        #!/usr/bin/env bash
        # contractor: Pixelhaus -- run content model migrations against the master env
        SPACE_ID=q8lmv3x0t2ka
        CMA_TOKEN={V}
        npx contentful-migration --space-id "$SPACE_ID" --environment-id master \\
          --management-token "$CMA_TOKEN" --yes migrations/"$1"
        """,
    ),
    _t(
        "cms/contentful-migrations/.github/workflows/migrate.yml",
        "t31_ref_ci",
        False,
        """
        name: contentful-migrate
        on:
          workflow_dispatch:
            inputs:
              migration: { required: true }
        jobs:
          migrate:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: npm ci
              - run: ./scripts/run-migration.sh "${{ inputs.migration }}"
                env:
                  CMA_TOKEN: {V}
                  SPACE_ID: q8lmv3x0t2ka
        """,
    ),
    _t(
        "cms/sanity-studio/sanity.cli.ts",
        "t31_sanity",
        True,
        """
        import { defineCliConfig } from 'sanity/cli';

        export default defineCliConfig({
          api: { projectId: 'lfm7t2qx', dataset: 'production' },
        });

        // deploy token for CI (editor role) -- TODO rotate, was pasted in #web-dev
        export const SANITY_DEPLOY_TOKEN = '{V}';
        """,
    ),
    _t(
        "cms/sanity-studio/.env.development",
        "t31_placeholder",
        False,
        """
        SANITY_STUDIO_PROJECT_ID=lfm7t2qx
        SANITY_STUDIO_DATASET=development
        # ask #web-dev for a personal token with editor role
        SANITY_AUTH_TOKEN={V}
        """,
    ),
    _t(
        "cms/arc-sync/src/main/resources/application.properties",
        "t31_pw",
        True,
        """
        spring.application.name=arc-sync
        spring.datasource.url=jdbc:postgresql://pg-cms.lfm.internal:5432/arc_sync
        spring.datasource.username=arc_sync
        spring.datasource.password={V}
        arc.api.base-url=https://api.lumenfield.arcpublishing.com
        arc.api.access-token={V2}
        arc.sync.cron=0 */5 * * * *
        """,
    ),
    _t(
        "cms/arc-sync/src/main/resources/application-k8s.properties",
        "t31_ref_jvm",
        False,
        """
        spring.datasource.url=jdbc:postgresql://${DB_HOST}:5432/arc_sync
        spring.datasource.username=arc_sync
        spring.datasource.password={V}
        arc.api.access-token={V2}
        """,
    ),
    _t(
        "cms/arc-sync/src/test/resources/application-test.properties",
        "t31_fake",
        False,
        """
        spring.datasource.url=jdbc:h2:mem:arc;MODE=PostgreSQL
        spring.datasource.username=sa
        spring.datasource.password=
        # wiremock stands in for Arc; any token is accepted
        arc.api.base-url=http://localhost:${wiremock.server.port}
        arc.api.access-token={V}
        """,
    ),
    _t(
        "cms/web-frontend/src/lib/algolia.ts",
        "t31_algolia_search",
        False,
        """
        import algoliasearch from 'algoliasearch/lite';

        // search-only key: safe to ship to the browser (ACL: search, referer-restricted)
        export const searchClient = algoliasearch('LFM7QX2N0P', '{V}');
        export const articlesIndex = searchClient.initIndex('articles_prod');
        """,
    ),
    _t(
        "cms/web-frontend/scripts/reindex.js",
        "t31_hex32",
        True,
        """
        const algoliasearch = require('algoliasearch');
        // admin key: needed for saveObjects/clearObjects
        const client = algoliasearch('LFM7QX2N0P', '{V}');
        const index = client.initIndex('articles_prod');

        (async () => {
          const articles = require('./dump/articles.json');
          await index.replaceAllObjects(articles, { safe: true });
          console.log(`reindexed ${articles.length}`);
        })();
        """,
    ),
]

# ==================================================================== recommendations and analytics
TEMPLATES += [
    _t(
        "data/airflow/dags/watch_history_export.py",
        "t31_url_pw",
        True,
        """
        from datetime import datetime

        from airflow import DAG
        from airflow.providers.postgres.operators.postgres import PostgresOperator

        # quick fix while the connection UI is broken on the new cluster (DATA-877)
        WATCH_DB = "postgresql://recs_ro:{V}@pg-watch-replica.lfm.internal:5432/watch"

        with DAG("watch_history_export", start_date=datetime(2024, 3, 1), schedule="@hourly", catchup=False):
            PostgresOperator(task_id="export", postgres_conn_id=None, sql="sql/export.sql",
                             database=WATCH_DB)
        """,
    ),
    _t(
        "data/airflow/dags/recs_training.py",
        "t31_ref_py",
        False,
        """
        from airflow.decorators import dag, task
        from airflow.models import Variable
        import os

        @dag(schedule="0 3 * * *", catchup=False, tags=["recs"])
        def recs_training():
            @task
            def train():
                password = {V}
                token = {V2}
                return run_training(password=password, token=token)
            train()

        recs_training()
        """,
    ),
    _t(
        "data/airflow/helm/values-prod.yaml",
        "t31_pw",
        True,
        """
        executor: KubernetesExecutor
        webserver:
          defaultUser:
            enabled: true
            username: admin
            password: {V}
        data:
          metadataConnection:
            user: airflow
            pass: {V2}
            host: pg-airflow.lfm.internal
            db: airflow
        """,
    ),
    _t(
        "data/airflow/helm/values.yaml",
        "t31_ref_conf",
        False,
        """
        executor: KubernetesExecutor
        webserver:
          defaultUser:
            enabled: false
        data:
          metadataSecretName: airflow-metadata
        fernetKeySecretName: airflow-fernet
        extraEnv: |
          - name: AIRFLOW_CONN_SNOWFLAKE_DEFAULT
            value: "{V}"
        """,
    ),
    _t(
        "data/dbt/profiles.yml",
        "t31_pw",
        True,
        """
        lumenfield_analytics:
          target: prod
          outputs:
            prod:
              type: snowflake
              account: lfm-eu1.eu-west-1
              user: DBT_PROD
              password: "{V}"
              role: TRANSFORMER
              warehouse: TRANSFORM_WH
              database: ANALYTICS
              schema: marts
              threads: 8
        """,
    ),
    _t(
        "data/dbt/profiles.example.yml",
        "t31_ref_conf",
        False,
        """
        lumenfield_analytics:
          target: dev
          outputs:
            dev:
              type: snowflake
              account: lfm-eu1.eu-west-1
              user: "{{ env_var('SNOWFLAKE_USER') }}"
              password: "{V}"
              role: TRANSFORMER_DEV
              warehouse: DEV_WH
              database: ANALYTICS_DEV
              schema: "dbt_{{ env_var('USER') }}"
        """,
    ),
    _t(
        "data/bigquery/keys/bq-loader@lfm-data.iam.gserviceaccount.com.json",
        "t31_gcp_pem_escaped",
        True,
        """
        {
          "type": "service_account",
          "project_id": "lfm-data",
          "private_key_id": "3c9e1f7a2b4d6e8f0a1c3e5f7b9d1f3a5c7e9b1d",
          "private_key": "{V}",
          "client_email": "bq-loader@lfm-data.iam.gserviceaccount.com",
          "client_id": "108736452910384756123",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "data/spark/recs-features/conf/spark-defaults.conf",
        "t31_s3a_pair",
        True,
        """
        spark.master                             k8s://https://k8s-data.lfm.internal:6443
        spark.hadoop.fs.s3a.endpoint             s3.eu-west-1.amazonaws.com
        {V}
        spark.sql.shuffle.partitions             400
        spark.eventLog.enabled                   true
        """,
    ),
    _t(
        "transcode/workers/Dockerfile",
        "t31_digest",
        False,
        """
        # pinned by digest (renovate keeps these current)
        FROM jrottenberg/ffmpeg:6.1-ubuntu2204@{V} AS ffmpeg
        FROM python:3.12-slim@{V2}
        COPY --from=ffmpeg /usr/local /usr/local
        WORKDIR /srv/worker
        COPY requirements.txt .
        RUN pip install --no-cache-dir --require-hashes -r requirements.txt
        COPY worker/ worker/
        USER 10001
        ENTRYPOINT ["python", "-m", "worker"]
        """,
    ),
    _t(
        "data/notebooks/recs/ab_test_autoplay.ipynb",
        "t31_databricks",
        True,
        """
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# Autoplay next-episode A/B test (LP-3120)\\n", "Pulls exposure + watch-time from the lakehouse."]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "from databricks import sql\\n",
            "conn = sql.connect(server_hostname='adb-4417203395820561.1.azuredatabricks.net',\\n",
            "                   http_path='/sql/1.0/warehouses/7f2c91ab3e40d618',\\n",
            "                   access_token='{V}')\\n",
            "df = conn.cursor().execute('select * from recs.autoplay_exposure').fetchall_arrow().to_pandas()"
           ]
          }
         ],
         "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "data/notebooks/recs/churn_features.ipynb",
        "t31_ref_py",
        False,
        """
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "import os\\n",
            "kafka_pw = {V}\\n",
            "df = spark.read.format('kafka').option('kafka.sasl.jaas.config', jaas(kafka_pw)).load()"
           ]
          }
         ],
         "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "data/kafka/clients/playback-events-producer.properties",
        "t31_pw",
        True,
        """
        bootstrap.servers=kafka-a.lfm.internal:9094,kafka-b.lfm.internal:9094
        security.protocol=SASL_SSL
        sasl.mechanism=SCRAM-SHA-512
        sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="playback-events" password="{V}";
        ssl.truststore.location=/etc/kafka/truststore.jks
        ssl.truststore.password={V2}
        acks=all
        compression.type=zstd
        """,
    ),
    _t(
        "data/kafka/clients/recs-consumer.properties",
        "t31_ref_jvm",
        False,
        """
        bootstrap.servers=kafka-a.lfm.internal:9094
        security.protocol=SASL_SSL
        sasl.mechanism=SCRAM-SHA-512
        sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="recs" password="{V}";
        group.id=recs-feature-builder
        """,
    ),
    _t(
        "data/kafka/scram/users.sql",
        "t31_scram",
        False,
        """
        -- mirror of the SCRAM verifiers in the analytics Postgres (for the Kafka authorizer)
        UPDATE pg_authid SET rolpassword = NULL WHERE rolname = 'tmp_loader';
        INSERT INTO kafka_users (principal, verifier, mechanism) VALUES
          ('playback-events', '{V}', 'SCRAM-SHA-512'),
          ('recs', '{V2}', 'SCRAM-SHA-512');
        """,
    ),
    _t(
        "data/clickhouse/users.d/analysts.xml",
        "t31_sha256",
        False,
        """
        <clickhouse>
          <users>
            <analyst_ro>
              <password_sha256_hex>{V}</password_sha256_hex>
              <networks><ip>10.40.0.0/16</ip></networks>
              <profile>readonly</profile>
              <quota>default</quota>
            </analyst_ro>
            <grafana>
              <password_sha256_hex>{V2}</password_sha256_hex>
              <profile>readonly</profile>
            </grafana>
          </users>
        </clickhouse>
        """,
    ),
    _t(
        "ops/jenkins/transcode-release.Jenkinsfile",
        "t31_github",
        True,
        """
        pipeline {
            agent { label 'linux-docker' }
            environment {
                // TODO: switch to the credentials plugin, token belongs to lfm-release-bot
                GH_TOKEN = '{V}'
            }
            stages {
                stage('Checkout') {
                    steps {
                        sh 'git clone https://x-access-token:${GH_TOKEN}@github.com/lumenfield/transcode-ladders.git'
                    }
                }
                stage('Release') {
                    steps { sh 'cd transcode-ladders && make release' }
                }
            }
        }
        """,
    ),
    _t(
        "ops/deploy/keys/origin-deploy_ed25519",
        "t31_openssh",
        True,
        """
        {V}
        """,
    ),
    _t(
        "data/recs-api/internal/store/redis_prod.go",
        "t31_ref_go",
        False,
        """
        package store

        import (
        	"os"

        	"github.com/redis/go-redis/v9"
        )

        func NewRecsCacheFromEnv() *redis.Client {
        	return redis.NewClient(&redis.Options{
        		Addr:     os.Getenv("RECS_REDIS_ADDR"),
        		Password: {V},
        	})
        }
        """,
    ),
    _t(
        "data/snowflake/setup/create_service_users.sql",
        "t31_pw",
        True,
        """
        USE ROLE SECURITYADMIN;
        CREATE USER IF NOT EXISTS LOOKER_SVC PASSWORD = '{V}' DEFAULT_ROLE = REPORTER MUST_CHANGE_PASSWORD = FALSE;
        CREATE USER IF NOT EXISTS FIVETRAN_SVC PASSWORD = '{V2}' DEFAULT_ROLE = LOADER;
        GRANT ROLE REPORTER TO USER LOOKER_SVC;
        GRANT ROLE LOADER TO USER FIVETRAN_SVC;
        """,
    ),
    _t(
        "data/snowflake/setup/create_keypair_users.sql",
        "t31_pubkey_body",
        False,
        """
        -- key-pair auth for the dbt runner; paste the body of the public key without armour lines
        USE ROLE SECURITYADMIN;
        ALTER USER DBT_PROD SET RSA_PUBLIC_KEY = '{V}';
        ALTER USER LOOKER_SVC SET RSA_PUBLIC_KEY_2 = '{V2}';
        DESC USER DBT_PROD;
        """,
    ),
    _t(
        "data/analytics-events/src/main/kotlin/Config.kt",
        "t31_hex32",
        True,
        """
        package tv.lumenfield.analytics

        object Config {
            const val SEGMENT_SERVER_WRITE_KEY = "{V}"
            const val AMPLITUDE_SECRET_KEY = "{V2}"
            const val BATCH_SIZE = 500
            const val FLUSH_INTERVAL_MS = 10_000L
        }
        """,
    ),
]

# ==================================================================== ad server and RTB
TEMPLATES += [
    _t(
        "ads/prebid-server/config/pbs.yaml",
        "t31_pw",
        True,
        """
        host: 0.0.0.0
        port: 8000
        external_url: https://pbs.lumenfieldads.com
        stored_requests:
          postgres:
            connection:
              dbname: prebid
              host: pg-ads.lfm.internal
              user: pbs
              password: "{V}"
        cache:
          scheme: https
          host: pbc.lumenfieldads.com
        adapters:
          rubicon:
            xapi:
              username: lumenfield_pbs
              password: "{V2}"
        """,
    ),
    _t(
        "ads/prebid-server/config/pbs.example.yaml",
        "t31_ref_conf",
        False,
        """
        stored_requests:
          postgres:
            connection:
              dbname: prebid
              host: localhost
              user: pbs
              password: "{V}"
        adapters:
          rubicon:
            xapi:
              username: lumenfield_pbs
              password: "{V2}"
        """,
    ),
    _t(
        "ads/prebid-web/src/adUnits.js",
        "t31_tag_id",
        False,
        """
        // bidder params are public: they travel in every bid request from the browser
        export const adUnits = [{
          code: 'div-gpt-ad-article-mpu',
          mediaTypes: { banner: { sizes: [[300, 250], [300, 600]] } },
          bids: [
            { bidder: 'appnexus', params: { placementId: 28817345 } },
            { bidder: 'ix', params: { siteId: '918273', size: [300, 250] } },
            { bidder: 'openx', params: { unit: '561230987', delDomain: 'lumenfield-d.openx.net' } },
            { bidder: 'lfmdsp', params: { publisherHash: '{V}', zone: '{V2}' } },
          ],
        }];
        """,
    ),
    _t(
        "ads/ads-txt/ads.txt",
        "t31_pub_id",
        False,
        """
        # ads.txt for lumenfield.tv -- maintained by ad-ops, see ADOPS-512
        google.com, {V}, DIRECT, f08c47fec0942fa0
        google.com, {V2}, RESELLER, f08c47fec0942fa0
        rubiconproject.com, 21344, DIRECT, 0bfd66d529a55807
        appnexus.com, 10271, RESELLER, f5ab79cb980f11d1
        indexexchange.com, 193745, DIRECT, 50b1c356f2c5c8fc
        OWNERDOMAIN=lumenfield.tv
        """,
    ),
    _t(
        "ads/bidder/internal/exchange/auth.go",
        "t31_jwt",
        True,
        """
        package exchange

        import "net/http"

        // Seat token issued by the exchange for the Lumenfield DSP seat (seat id 8841).
        const seatToken = "{V}"

        func authorize(req *http.Request) {
        	req.Header.Set("Authorization", "Bearer "+seatToken)
        	req.Header.Set("x-openrtb-version", "2.6")
        }
        """,
    ),
    _t(
        "ads/bidder/internal/exchange/auth_test.go",
        "t31_request_id",
        False,
        """
        package exchange

        import (
        	"net/http/httptest"
        	"testing"
        )

        func TestBidRequestIDsEchoed(t *testing.T) {
        	req := httptest.NewRequest("POST", "/openrtb2/auction", nil)
        	req.Header.Set("X-Request-Id", "{V}")
        	resp := handle(req, bidRequest{ID: "{V2}", Imp: []imp{{ID: "1", TagID: "article-mpu"}}})
        	if resp.ID != "{V2}" {
        		t.Fatalf("bid response must echo the request id, got %s", resp.ID)
        	}
        }
        """,
    ),
    _t(
        "ads/bidder/testdata/bid_request_ctv.json",
        "t31_tcf",
        False,
        """
        {
          "id": "9b1f6c2e-ctv-0001",
          "imp": [{"id": "1", "video": {"mimes": ["video/mp4"], "minduration": 15, "maxduration": 30, "w": 1920, "h": 1080}, "bidfloor": 12.5, "bidfloorcur": "USD"}],
          "app": {"bundle": "tv.lumenplus.roku", "publisher": {"id": "lfm-ctv"}},
          "device": {"ua": "Roku/DVP-12.5", "ifa": "6d3c1b0a-9f8e-4d7c-b6a5-4f3e2d1c0b9a", "devicetype": 3},
          "regs": {"ext": {"gdpr": 1}},
          "user": {"ext": {"consent": "{V}"}}
        }
        """,
    ),
    _t(
        "ads/bidder/deploy/docker-compose.yml",
        "t31_pw",
        True,
        """
        services:
          bidder:
            image: registry.lfm.internal/ads/bidder:2.31.0
            environment:
              BIDDER_DB_DSN: "postgres://bidder:{V}@pg-ads:5432/bidder?sslmode=disable"
              AEROSPIKE_HOSTS: aerospike:3000
            depends_on: [pg-ads, aerospike]
          pg-ads:
            image: postgres:16
            environment:
              POSTGRES_USER: bidder
              POSTGRES_PASSWORD: {V}
          aerospike:
            image: aerospike/aerospike-server:7.1.0.0
        """,
    ),
    _t(
        "ads/bidder/deploy/docker-compose.override.example.yml",
        "t31_ref_conf",
        False,
        """
        services:
          bidder:
            environment:
              BIDDER_DB_DSN: "postgres://bidder:{V}@pg-ads:5432/bidder?sslmode=disable"
          pg-ads:
            environment:
              POSTGRES_PASSWORD: "{V2}"
        """,
    ),
    _t(
        "ads/gam-sync/credentials/gam-service-account.json",
        "t31_gcp_pem_escaped",
        True,
        """
        {
          "type": "service_account",
          "project_id": "lfm-adops",
          "private_key_id": "91ac3e5b7d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c",
          "private_key": "{V}",
          "client_email": "gam-sync@lfm-adops.iam.gserviceaccount.com",
          "client_id": "117263548190273645581",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "cms/web-frontend/src/rum.ts",
        "t31_dd_client_token",
        False,
        """
        import { datadogRum } from '@datadog/browser-rum';

        // client tokens are meant for browsers: they can only submit RUM/log events
        datadogRum.init({
          applicationId: 'a3c1e7f2-9b4d-4f6a-8e2c-1d0b9a8f7e6d',
          clientToken: '{V}',
          site: 'datadoghq.eu',
          service: 'lumenfield-web',
          sessionSampleRate: 20,
        });
        """,
    ),
    _t(
        "ads/gam-sync/sync_line_items.py",
        "t31_ttd_token",
        True,
        """
        \"\"\"Mirrors Trade Desk campaign flights into GAM line items (ad-ops request ADOPS-733).\"\"\"
        import requests

        TTD_API = "https://api.thetradedesk.com/v3"
        TTD_AUTH = "{V}"  # long-lived token from the partner portal, expires 2026-06

        def flights(advertiser_id: str) -> list[dict]:
            r = requests.post(f"{TTD_API}/adgroup/query/advertiser",
                              headers={"TTD-Auth": TTD_AUTH},
                              json={"AdvertiserId": advertiser_id, "PageStartIndex": 0, "PageSize": 100})
            r.raise_for_status()
            return r.json()["Result"]
        """,
    ),
    _t(
        "ads/reporting/pubmatic_pull.py",
        "t31_pubmatic_token",
        True,
        """
        import datetime as dt
        import requests

        PUBMATIC_TOKEN = "{V}"
        PUB_ID = 160482

        def daily(day: dt.date):
            url = f"https://api.pubmatic.com/v1/analytics/data/publisher/{PUB_ID}"
            params = {"fromDate": f"{day}T00:00", "toDate": f"{day}T23:59", "metrics": "paidImpressions,revenue"}
            return requests.get(url, params=params, headers={"Authorization": f"Bearer {PUBMATIC_TOKEN}"}).json()
        """,
    ),
    _t(
        "ads/reporting/xandr_login.sh",
        "t31_pw",
        True,
        """
        #!/bin/bash
        # get a Xandr API token (valid 2h) for the nightly revenue pull
        TOKEN=$(curl -s -X POST https://api.appnexus.com/auth \\
          -d '{"auth":{"username":"lfm_reporting_api","password":"{V}"}}' | jq -r .response.token)
        curl -s -H "Authorization: $TOKEN" "https://api.appnexus.com/report?id=$1" > out/report.json
        """,
    ),
    _t(
        "ads/reporting/README.md",
        "t31_redacted",
        False,
        """
        # Ad revenue reporting

        | Source    | Auth                                  | Where the secret lives         |
        |-----------|---------------------------------------|--------------------------------|
        | PubMatic  | bearer token `{V}`                     | Vault `ads/pubmatic`           |
        | Xandr     | user `lfm_reporting_api` / `{V2}`      | Vault `ads/xandr`              |
        | Magnite   | API key + secret                      | 1Password "Ad Ops" vault       |

        Tokens were rotated on 2025-02-03 after the contractor offboarding.
        """,
    ),
    _t(
        "subscriptions/mailer/src/main/resources/application.yml",
        "t31_sendgrid",
        True,
        """
        spring:
          application:
            name: subscriptions-mailer
          sendgrid:
            api-key: {V}
        mailer:
          from: "Lumen+ <hello@lumenplus.tv>"
          templates:
            welcome: d-8f2c1a9e7b3d4c5e6f7a8b9c0d1e2f3a
            payment-failed: d-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d
        """,
    ),
    _t(
        "ads/adserver/src/main/resources/application-cloud.yml",
        "t31_ref_jvm",
        False,
        """
        spring:
          datasource:
            url: jdbc:mysql://${ADSERVER_DB_HOST}:3306/adserver
            username: adserver
            password: {V}
          data:
            redis:
              password: {V2}
        """,
    ),
    _t(
        "ads/adserver/src/main/java/tv/lumenfield/ads/vast/VastTracker.java",
        "t31_hex32",
        True,
        """
        package tv.lumenfield.ads.vast;

        import javax.crypto.Mac;
        import javax.crypto.spec.SecretKeySpec;

        public final class VastTracker {
            // HMAC key for impression-pixel signatures; shared with the analytics collector
            private static final String PIXEL_HMAC_KEY = "{V}";

            public static String sign(String impressionId, long ts) throws Exception {
                Mac mac = Mac.getInstance("HmacSHA256");
                mac.init(new SecretKeySpec(PIXEL_HMAC_KEY.getBytes(), "HmacSHA256"));
                return HexFormat.of().formatHex(mac.doFinal((impressionId + ":" + ts).getBytes()));
            }
        }
        """,
    ),
    _t(
        "ads/adserver/src/test/java/tv/lumenfield/ads/vast/VastTrackerTest.java",
        "t31_sha256",
        False,
        """
        package tv.lumenfield.ads.vast;

        import static org.junit.jupiter.api.Assertions.assertEquals;
        import org.junit.jupiter.api.Test;

        class VastTrackerTest {
            @Test
            void signatureIsStable() throws Exception {
                // expected HMAC over "imp-1:1700000000" with the test key from TestKeys
                assertEquals("{V}", VastTracker.signWith(TestKeys.PIXEL, "imp-1", 1700000000L));
            }
        }
        """,
    ),
    _t(
        "apps/android-tv/app/src/main/res/values/ads.xml",
        "t31_admob_id",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <!-- AdMob app id: public, required in the manifest meta-data -->
            <string name="admob_app_id">{V}</string>
            <string name="ima_ad_tag">https://pubads.g.doubleclick.net/gampad/ads?iu=/21874563/lumenplus_ctv&amp;sz=640x480&amp;gdfp_req=1&amp;output=vast</string>
        </resources>
        """,
    ),
    _t(
        "apps/web-player/src/newrelic-snippet.js",
        "t31_nr_browser",
        False,
        """
        ;window.NREUM||(NREUM={});NREUM.init={distributed_tracing:{enabled:true},privacy:{cookies_enabled:true}};
        // browser licence key: public, embedded in every page by the agent
        ;NREUM.loader_config={accountID:"3958211",trustKey:"3958211",agentID:"1134298765",licenseKey:"{V}",applicationID:"1134298765"};
        ;NREUM.info={beacon:"bam.eu01.nr-data.net",errorBeacon:"bam.eu01.nr-data.net",licenseKey:"{V}",applicationID:"1134298765",sa:1};
        """,
    ),
    _t(
        "ads/measurement/gtm.html",
        "t31_ga_id",
        False,
        """
        <!-- Google Tag Manager -->
        <script async src="https://www.googletagmanager.com/gtag/js?id={V}"></script>
        <script>
          window.dataLayer = window.dataLayer || [];
          function gtag(){dataLayer.push(arguments);}
          gtag('js', new Date());
          gtag('config', '{V}', { send_page_view: false });
        </script>
        """,
    ),
]

# ==================================================================== social and publishing clients
TEMPLATES += [
    _t(
        "social/autoposter/.env",
        "t31_twitter_secret",
        True,
        """
        # X/Twitter @LumenfieldNews app (read+write); consumer key is in the app settings page
        TWITTER_API_SECRET={V}
        TWITTER_ACCESS_TOKEN=1432987650123456789-{V2}
        TWITTER_ACCESS_TOKEN_SECRET={V3}
        """,
    ),
    _t(
        "social/autoposter/poster/x_client.py",
        "t31_twitter_bearer",
        True,
        """
        import httpx

        # app-only bearer for the search/recent endpoint (Basic tier)
        BEARER = "{V}"

        def recent_mentions(query: str = "@LumenfieldNews -is:retweet") -> list[dict]:
            r = httpx.get("https://api.x.com/2/tweets/search/recent",
                          params={"query": query, "max_results": 100},
                          headers={"Authorization": f"Bearer {BEARER}"})
            r.raise_for_status()
            return r.json().get("data", [])
        """,
    ),
    _t(
        "social/autoposter/poster/settings.py",
        "t31_ref_py",
        False,
        """
        import os

        TWITTER = {
            "consumer_key": os.environ.get("TWITTER_API_KEY", ""),
            "consumer_secret": {V},
            "bearer": {V2},
        }
        SCHEDULE_WINDOW_MIN = 15
        """,
    ),
    _t(
        "social/autoposter/tests/test_x_client.py",
        "t31_fake",
        False,
        """
        import respx
        from poster import x_client

        @respx.mock
        def test_recent_mentions_empty(monkeypatch):
            monkeypatch.setattr(x_client, "BEARER", "{V}")
            respx.get("https://api.x.com/2/tweets/search/recent").respond(json={"meta": {"result_count": 0}})
            assert x_client.recent_mentions() == []
        """,
    ),
    _t(
        "social/meta-publisher/src/graph.ts",
        "t31_meta_token",
        True,
        """
        const GRAPH = 'https://graph.facebook.com/v19.0';
        // never-expiring page token for "Lumenfield News" (page id 104928371625394)
        const PAGE_TOKEN = '{V}';

        export async function publishLink(message: string, link: string) {
          const res = await fetch(`${GRAPH}/104928371625394/feed`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ message, link, access_token: PAGE_TOKEN }),
          });
          if (!res.ok) throw new Error(`graph ${res.status}`);
          return res.json();
        }
        """,
    ),
    _t(
        "social/meta-publisher/src/graph.config.ts",
        "t31_ref_js",
        False,
        """
        export const graphConfig = {
          version: 'v19.0',
          pageId: '104928371625394',
          pageToken: {V},
          appSecret: {V2},
        };
        """,
    ),
    _t(
        "social/youtube-uploader/client_secret.json",
        "t31_google_oauth_secret",
        True,
        """
        {"installed":{"client_id":"731902846155-8k2m4p6r8t0v2x4z6b8d0f2h4j6l8n0q.apps.googleusercontent.com","project_id":"lfm-youtube-uploader","auth_uri":"https://accounts.google.com/o/oauth2/auth","token_uri":"https://oauth2.googleapis.com/token","client_secret":"{V}","redirect_uris":["http://localhost"]}}
        """,
    ),
    _t(
        "social/youtube-uploader/README.md",
        "t31_oauth_client_id",
        False,
        """
        # YouTube uploader

        Uses the desktop OAuth client of the `lfm-youtube-uploader` project. The client id is
        `{V}`; the client secret is in 1Password ("YouTube uploader OAuth").

        First run opens a browser for consent and stores a refresh token in `~/.lfm-yt/token.json`.
        """,
    ),
    _t(
        "social/youtube-uploader/analytics.go",
        "t31_google_api",
        True,
        """
        package main

        import (
        	"context"

        	"google.golang.org/api/option"
        	"google.golang.org/api/youtube/v3"
        )

        const dataAPIKey = "{V}" // restricted to YouTube Data API v3

        func channelStats(ctx context.Context, channelID string) (*youtube.ChannelListResponse, error) {
        	svc, err := youtube.NewService(ctx, option.WithAPIKey(dataAPIKey))
        	if err != nil {
        		return nil, err
        	}
        	return svc.Channels.List([]string{"statistics"}).Id(channelID).Do()
        }
        """,
    ),
    _t(
        "social/linkedin-poster/config/linkedin.rb",
        "t31_linkedin_secret",
        True,
        """
        # LinkedIn "Lumenfield Careers" company page app
        LINKEDIN = {
          client_id: '78ab3kz9qx1m2n',
          client_secret: '{V}',
          organization_urn: 'urn:li:organization:10482937',
          scopes: %w[w_organization_social r_organization_social]
        }.freeze
        """,
    ),
    _t(
        "social/linkedin-poster/config/linkedin.production.rb",
        "t31_ref_rb",
        False,
        """
        LINKEDIN = {
          client_id: ENV.fetch('LINKEDIN_CLIENT_ID'),
          client_secret: {V},
          organization_urn: 'urn:li:organization:10482937'
        }.freeze
        """,
    ),
    _t(
        "social/reddit-monitor/praw.ini",
        "t31_reddit_secret",
        True,
        """
        [lfm-monitor]
        client_id=Vq8xK2mLp3RtZw
        client_secret={V}
        user_agent=lfm-monitor/1.4 by u/lumenfield_social
        username=lumenfield_social
        password={V2}
        """,
    ),
    _t(
        "social/reddit-monitor/praw.example.ini",
        "t31_placeholder",
        False,
        """
        [lfm-monitor]
        client_id=<app id from reddit.com/prefs/apps>
        client_secret={V}
        user_agent=lfm-monitor/1.4 by u/lumenfield_social
        username=lumenfield_social
        password={V2}
        """,
    ),
    _t(
        "social/tiktok-sync/src/main.rs",
        "t31_hex32",
        True,
        """
        use reqwest::Client;

        const CLIENT_KEY: &str = "awq3zj1m8k2x7c9v";
        const CLIENT_SECRET: &str = "{V}";

        #[tokio::main]
        async fn main() -> anyhow::Result<()> {
            let token = Client::new()
                .post("https://open.tiktokapis.com/v2/oauth/token/")
                .form(&[("client_key", CLIENT_KEY), ("client_secret", CLIENT_SECRET), ("grant_type", "client_credentials")])
                .send().await?.text().await?;
            println!("{token}");
            Ok(())
        }
        """,
    ),
    _t(
        "social/embeds/oembed_cache.json",
        "t31_media_id",
        False,
        """
        {
          "generated": "2025-03-14T08:00:00Z",
          "items": [
            {"provider": "youtube", "id": "{V}", "title": "Lumenfield News at Ten"},
            {"provider": "spotify", "id": "{V2}", "title": "The Backlot podcast"},
            {"provider": "brightcove", "id": "{V3}", "title": "Election night trailer"}
          ]
        }
        """,
    ),
]

# ==================================================================== smart-TV and console apps
TEMPLATES += [
    _t(
        "apps/android-tv/keystore.properties",
        "t31_pw",
        True,
        """
        storeFile=../signing/lumenplus-upload.jks
        storePassword={V}
        keyAlias=lumenplus-upload
        keyPassword={V2}
        """,
    ),
    _t(
        "apps/android-tv/app/build.gradle.kts",
        "t31_ref_jvm",
        False,
        """
        android {
            namespace = "tv.lumenplus.androidtv"
            signingConfigs {
                create("release") {
                    storeFile = file(System.getenv("UPLOAD_KEYSTORE") ?: "../signing/lumenplus-upload.jks")
                    storePassword = providers.gradleProperty("lumenplus.storePassword").orElse("{V}").get()
                    keyAlias = "lumenplus-upload"
                    keyPassword = providers.gradleProperty("lumenplus.keyPassword").orElse("{V2}").get()
                }
            }
        }
        """,
    ),
    _t(
        "apps/android-tv/app/google-services.json",
        "t31_fcm_key",
        True,
        """
        {
          "project_info": {
            "project_number": "552039188471",
            "project_id": "lumenplus-tv",
            "storage_bucket": "lumenplus-tv.appspot.com"
          },
          "client": [{"client_info": {"android_client_info": {"package_name": "tv.lumenplus.androidtv"}}}],
          "_legacy_push": {
            "comment": "server key for the old notification sender, remove once on HTTP v1",
            "server_key": "{V}"
          },
          "configuration_version": "1"
        }
        """,
    ),
    _t(
        "apps/tizen/tizen-profile/profiles.xml",
        "t31_pw",
        True,
        """
        <?xml version="1.0" encoding="UTF-8" standalone="no"?>
        <profiles active="lumenplus-release" version="3.1">
          <profile name="lumenplus-release">
            <profileitem ca="" distributor="0" key="/home/builder/SamsungCertificate/lumenplus/author.p12" password="{V}" rootca=""/>
            <profileitem ca="" distributor="1" key="/home/builder/SamsungCertificate/lumenplus/distributor.p12" password="{V2}" rootca=""/>
          </profile>
        </profiles>
        """,
    ),
    _t(
        "apps/tizen/config.xml",
        "t31_request_id",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <widget xmlns="http://www.w3.org/ns/widgets" xmlns:tizen="http://tizen.org/ns/widgets" id="http://lumenplus.tv/tizen" version="5.8.0" viewmodes="maximized">
          <tizen:application id="LmnPlus7Qz.LumenPlus" package="LmnPlus7Qz" required_version="6.0"/>
          <tizen:metadata key="http://samsung.com/tv/metadata/devel.api.version" value="6.0"/>
          <tizen:metadata key="lfm.install.uuid" value="{V}"/>
          <name>Lumen+</name>
          <access origin="*" subdomains="true"/>
        </widget>
        """,
    ),
    _t(
        "apps/webos/tools/deploy-dev-tv.sh",
        "t31_weak_pw",
        True,
        """
        #!/bin/sh
        # side-load onto the QA LG TV in the lab (Developer Mode app, key server passphrase)
        ares-setup-device --add qa-tv -i "host=10.40.8.31" -i "port=9922" -i "username=prisoner" -i "password={V}"
        ares-install --device qa-tv ./build/tv.lumenplus.webos_5.8.0_all.ipk
        ares-launch --device qa-tv tv.lumenplus.webos
        """,
    ),
    _t(
        "apps/roku/Makefile",
        "t31_weak_pw",
        True,
        """
        APPNAME = lumenplus-roku
        VERSION = 3.14.0
        ROKU_DEV_TARGET ?= 10.40.8.22
        ROKU_DEV_PASSWORD ?= {V}

        install: zip
        	curl --user rokudev:$(ROKU_DEV_PASSWORD) --digest -F "mysubmit=Install" \\
        	  -F "archive=@out/$(APPNAME).zip" http://$(ROKU_DEV_TARGET)/plugin_install
        """,
    ),
    _t(
        "apps/roku/source/Config.brs",
        "t31_hex32",
        True,
        """
        ' Lumen+ Roku channel configuration
        function GetConfig() as object
            return {
                apiBase: "https://api.lumenplus.tv/v3"
                ' device-auth client secret for the activation flow
                clientId: "roku-lumenplus"
                clientSecret: "{V}"
            }
        end function
        """,
    ),
    _t(
        "apps/roku/components/ActivationScreen.xml",
        "t31_ui_text",
        False,
        """
        <?xml version="1.0" encoding="utf-8" ?>
        <component name="ActivationScreen" extends="Group">
          <children>
            <Label id="title" text="Activate Lumen+" font="font:LargeBoldSystemFont" translation="[160,120]"/>
            <Label id="hint" text="{V}" translation="[160,200]"/>
            <Label id="code" text="" font="font:LargeSystemFont" translation="[160,260]"/>
          </children>
        </component>
        """,
    ),
    _t(
        "apps/tvos/LumenPlus/Resources/Localizable.strings",
        "t31_i18n",
        False,
        """
        /* Sign-in screen */
        "signin.title" = "Lumen+";
        "signin.password.placeholder" = "{V}";
        "signin.password.error" = "{V2}";
        "parental.pin.prompt" = "{V3}";
        """,
    ),
    _t(
        "apps/tvos/fastlane/AuthKey_7QX2M9K4LP.p8",
        "t31_p8_key",
        True,
        """
        {V}
        """,
    ),
    _t(
        "apps/tvos/fastlane/Appfile.swift",
        "t31_ref_conf",
        False,
        """
        var appIdentifier: String { return "tv.lumenplus.tvos" }
        var appleID: String { return "mobile-release@lumenfield.tv" }
        var teamID: String { return "7QX2M9K4LP" }
        // App Store Connect key is read from the CI secret, see Fastfile
        var ascKeyContent: String { return environmentVariable(get: "ASC_KEY_CONTENT") ?? "{V}" }
        """,
    ),
    _t(
        "apps/console/playfab/PlayFabSettings.cs",
        "t31_playfab",
        True,
        """
        namespace Lumenfield.Console.Backend
        {
            public static class PlayFabBootstrap
            {
                public const string TitleId = "8A3F2";
                // server-side only! this build target is the matchmaking/watch-party service
                public const string DeveloperSecretKey = "{V}";
            }
        }
        """,
    ),
    _t(
        "apps/console/playfab/PlayFabSettings.Release.cs",
        "t31_ref_cs",
        False,
        """
        namespace Lumenfield.Console.Backend
        {
            public static class PlayFabBootstrapRelease
            {
                public const string TitleId = "8A3F2";
                public static string DeveloperSecretKey => {V};
            }
        }
        """,
    ),
    _t(
        "apps/console/xbox/WatchParty.Service/appsettings.json",
        "t31_azure_secret",
        True,
        """
        {
          "AzureAd": {
            "Instance": "https://login.microsoftonline.com/",
            "TenantId": "0d7c4f1e-2b3a-4c5d-8e9f-1a2b3c4d5e6f",
            "ClientId": "5e4d3c2b-1a0f-4e9d-8c7b-6a5f4e3d2c1b",
            "ClientSecret": "{V}"
          },
          "SignalR": { "MaxParticipants": 8 }
        }
        """,
    ),
    _t(
        "apps/mobile/ios/LumenPlus/Config/Secrets.xcconfig.template",
        "t31_placeholder",
        False,
        """
        // Copy to Secrets.xcconfig (git-ignored) and fill in.
        MUX_DATA_ENV_KEY = {V}
        CONVIVA_CUSTOMER_KEY = {V2}
        BRAZE_API_KEY = {V3}
        """,
    ),
    _t(
        "apps/mobile/android/app/src/main/assets/mapbox.properties",
        "t31_mapbox_pk",
        False,
        """
        # public access token for the venue map on live-event pages (URL-restricted)
        mapbox.access_token={V}
        mapbox.style=mapbox://styles/lumenfield/clx8k2m9p00ab01qz3v4w5y6t
        """,
    ),
    _t(
        "apps/mobile/scripts/upload_venue_tiles.py",
        "t31_mapbox_sk",
        True,
        """
        # uploads stadium tilesets for the sports vertical; needs a secret (sk.) token with uploads:write
        from mapbox import Uploader

        service = Uploader(access_token="{V}")
        with open("tiles/stadiums.mbtiles", "rb") as src:
            job = service.upload(src, "lumenfield.stadiums-2025")
            print(job.json()["id"])
        """,
    ),
]

# ==================================================================== newsroom tools
TEMPLATES += [
    _t(
        "newsroom/slack-bots/breaking-news-bot/index.js",
        "t31_slack_bot",
        True,
        """
        const { App } = require('@slack/bolt');

        const app = new App({
          token: '{V}',
          signingSecret: process.env.SLACK_SIGNING_SECRET,
        });

        app.command('/breaking', async ({ command, ack, say }) => {
          await ack();
          await say(`:rotating_light: *BREAKING* ${command.text} (desk: ${command.user_name})`);
        });

        (async () => { await app.start(3000); })();
        """,
    ),
    _t(
        "newsroom/slack-bots/breaking-news-bot/secrets.enc.yaml",
        "t31_enc_blob",
        False,
        """
        slack:
            bot_token: {V}
            signing_secret: {V2}
        sops:
            kms:
                - arn: arn:aws:kms:eu-west-2:381204556712:key/2b7c9e1f-4a3d-4e6b-8c5a-9f0e1d2c3b4a
                  created_at: "2025-01-09T10:22:41Z"
            lastmodified: "2025-01-09T10:22:43Z"
            mac: {V3}
            version: 3.9.1
        """,
    ),
    _t(
        "newsroom/wire-ingest/ingest.py",
        "t31_hex32",
        True,
        """
        \"\"\"Polls the AP Media API and Reuters Connect and drops items into the CMS inbox.\"\"\"
        import requests

        AP_API_KEY = "{V}"
        REUTERS_USER = "lfm-wire@lumenfield.tv"
        REUTERS_PASSWORD = "{V2}"

        def ap_feed(next_page: str | None = None):
            url = next_page or "https://api.ap.org/media/v/content/feed?q=productid:31989"
            return requests.get(url, headers={"x-api-key": AP_API_KEY}, timeout=20).json()
        """,
    ),
    _t(
        "newsroom/wire-ingest/tests/test_ingest.py",
        "t31_fake",
        False,
        """
        import ingest

        def test_feed_uses_key_header(requests_mock, monkeypatch):
            monkeypatch.setattr(ingest, "AP_API_KEY", "{V}")
            requests_mock.get("https://api.ap.org/media/v/content/feed?q=productid:31989", json={"data": {}})
            ingest.ap_feed()
            assert requests_mock.last_request.headers["x-api-key"] == "{V}"
        """,
    ),
    _t(
        "subscriptions/billing/config/stripe.toml",
        "t31_stripe",
        True,
        """
        [stripe]
        api_version = "2024-06-20"
        secret_key = "{V}"
        # publishable key is injected into the web build from the dashboard, not needed here

        [plans]
        monthly = "price_1OqLfmMonthly"
        annual = "price_1OqLfmAnnual"
        """,
    ),
    _t(
        "subscriptions/billing/config/stripe.example.toml",
        "t31_placeholder",
        False,
        """
        [stripe]
        api_version = "2024-06-20"
        secret_key = "{V}"
        webhook_secret = "{V2}"
        """,
    ),
    _t(
        "newsroom/alerts/teams_notify.ps1",
        "t31_teams_webhook",
        True,
        """
        # Posts embargo reminders to the Newsdesk channel in Teams
        param([string]$Story, [datetime]$LiftsAt)

        $webhook = "{V}"
        $body = @{ text = "Embargo on **$Story** lifts at $($LiftsAt.ToString('HH:mm')) UTC" } | ConvertTo-Json
        Invoke-RestMethod -Method Post -Uri $webhook -Body $body -ContentType 'application/json'
        """,
    ),
    _t(
        "newsroom/alerts/notify_discord.lua",
        "t31_discord_webhook",
        True,
        """
        -- OBS script: post "we're live" to the community Discord when the stream starts
        local http = require("socket.http")
        local ltn12 = require("ltn12")

        local WEBHOOK = "{V}"

        function on_event(event)
          if event == obs.OBS_FRONTEND_EVENT_STREAMING_STARTED then
            local body = '{"content":"Lumenfield Live is on air now!"}'
            http.request{ url = WEBHOOK, method = "POST", source = ltn12.source.string(body),
              headers = { ["content-type"] = "application/json", ["content-length"] = #body } }
          end
        end
        """,
    ),
    _t(
        "newsroom/alerts/deploy-alerts.yml",
        "t31_slack_webhook",
        True,
        """
        # alertmanager receiver for the newsroom publishing stack
        receivers:
          - name: newsroom-oncall
            slack_configs:
              - api_url: {V}
                channel: '#newsroom-publishing-alerts'
                send_resolved: true
        route:
          receiver: newsroom-oncall
          group_wait: 30s
        """,
    ),
    _t(
        "newsroom/alerts/deploy-alerts.prod.yml",
        "t31_ref_conf",
        False,
        """
        receivers:
          - name: newsroom-oncall
            slack_configs:
              - api_url_file: /etc/alertmanager/secrets/slack_url
                channel: '#newsroom-publishing-alerts'
          - name: newsroom-pager
            pagerduty_configs:
              - routing_key: "{V}"
        """,
    ),
    _t(
        "newsroom/docs/slack-integration.md",
        "t31_example_cred",
        False,
        """
        # Posting to Slack from newsroom tools

        Create an incoming webhook in the workspace admin and keep it in Vault
        (`newsroom/slack/<channel>`). Slack's docs show webhooks in this shape:

            {V}

        The value in our repos must always be `${SLACK_WEBHOOK_URL}`; CI fails the build otherwise.
        """,
    ),
    _t(
        "newsroom/liveblog/src/components/LoginForm.vue",
        "t31_ui_text",
        False,
        """
        <template>
          <form @submit.prevent="login">
            <label for="email">Email</label>
            <input id="email" v-model="email" type="email" autocomplete="username" />
            <label for="password">Password</label>
            <input id="password" v-model="password" type="password" autocomplete="current-password" />
            <p class="hint">{V}</p>
            <button type="submit">Sign in</button>
          </form>
        </template>
        <script setup>
        import { ref } from 'vue';
        const email = ref('');
        const password = ref('');
        </script>
        """,
    ),
    _t(
        "newsroom/liveblog/config/prod.exs",
        "t31_b64key",
        True,
        """
        import Config

        config :liveblog, LiveblogWeb.Endpoint,
          url: [host: "live.lumenfield.tv", port: 443, scheme: "https"],
          secret_key_base: "{V}"

        config :liveblog, Liveblog.Repo,
          username: "liveblog",
          password: "{V2}",
          hostname: "pg-news.lfm.internal",
          pool_size: 15
        """,
    ),
    _t(
        "newsroom/liveblog/config/runtime.exs",
        "t31_ref_conf",
        False,
        """
        import Config

        if config_env() == :prod do
          config :liveblog, LiveblogWeb.Endpoint,
            secret_key_base: System.fetch_env!("SECRET_KEY_BASE")

          config :liveblog, Liveblog.Repo,
            password: "{V}"
        end
        """,
    ),
]

# ==================================================================== podcast hosting
TEMPLATES += [
    _t(
        "podcast/icecast/icecast.xml",
        "t31_weak_pw",
        True,
        """
        <icecast>
            <location>Lumenfield Audio, Manchester</location>
            <admin>audio-ops@lumenfield.tv</admin>
            <limits><clients>2000</clients><sources>8</sources></limits>
            <authentication>
                <source-password>{V}</source-password>
                <relay-password>{V2}</relay-password>
                <admin-user>admin</admin-user>
                <admin-password>{V3}</admin-password>
            </authentication>
            <hostname>radio.lumenfieldaudio.com</hostname>
            <listen-socket><port>8000</port></listen-socket>
        </icecast>
        """,
    ),
    _t(
        "podcast/icecast/icecast.xml.tmpl",
        "t31_ref_conf",
        False,
        """
        <icecast>
            <authentication>
                <source-password>{V}</source-password>
                <relay-password>{V2}</relay-password>
                <admin-user>admin</admin-user>
                <admin-password>{V3}</admin-password>
            </authentication>
        </icecast>
        """,
    ),
    _t(
        "podcast/storage/terraform/r2.auto.tfvars",
        "t31_r2_pair",
        True,
        """
        # Cloudflare R2 bucket for episode audio (enclosures served via audio.lumenfieldaudio.com)
        account_id  = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
        bucket_name = "lfm-episodes"
        {V}
        """,
    ),
    _t(
        "podcast/storage/terraform/variables.tf",
        "t31_ref_tf",
        False,
        """
        variable "r2_secret_access_key" {
          type      = string
          sensitive = true
        }

        locals {
          r2_secret = {V}
        }
        """,
    ),
    _t(
        "podcast/feed-builder/podcastindex.py",
        "t31_podcastindex_secret",
        True,
        """
        import hashlib
        import time

        import requests

        PI_KEY = "UXKCGDSYGUUEVQJSYDZH"
        PI_SECRET = "{V}"

        def search(term: str) -> dict:
            now = str(int(time.time()))
            auth = hashlib.sha1((PI_KEY + PI_SECRET + now).encode()).hexdigest()
            headers = {"X-Auth-Key": PI_KEY, "X-Auth-Date": now, "Authorization": auth, "User-Agent": "lfm-feed-builder/2.0"}
            return requests.get("https://api.podcastindex.org/api/1.0/search/byterm", params={"q": term}, headers=headers).json()
        """,
    ),
    _t(
        "podcast/feed-builder/feeds/the-backlot.xml",
        "t31_media_id",
        False,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd" xmlns:podcast="https://podcastindex.org/namespace/1.0">
          <channel>
            <title>The Backlot</title>
            <podcast:guid>{V}</podcast:guid>
            <itunes:author>Lumenfield Audio</itunes:author>
            <item>
              <title>Ep. 212: Inside the edit suite</title>
              <guid isPermaLink="false">{V2}</guid>
              <enclosure url="https://audio.lumenfieldaudio.com/backlot/212.mp3" length="48213304" type="audio/mpeg"/>
            </item>
          </channel>
        </rss>
        """,
    ),
    _t(
        "podcast/uploader/upload.sh",
        "t31_aws_env_pair",
        True,
        """
        #!/usr/bin/env bash
        # contractor upload script (Northgate Audio) -- IAM user lfm-podcast-uploader
        {V}
        export AWS_DEFAULT_REGION=eu-west-2
        aws s3 cp "$1" "s3://lfm-podcast-raw/incoming/$(basename "$1")" --storage-class STANDARD_IA
        """,
    ),
    _t(
        "podcast/uploader/upload.ps1",
        "t31_ref_ci",
        False,
        """
        # Windows version for the studio PCs; credentials come from the studio's secret store
        param([string]$File)
        $env:AWS_ACCESS_KEY_ID = "{V}"
        $env:AWS_SECRET_ACCESS_KEY = "{V2}"
        aws s3 cp $File "s3://lfm-podcast-raw/incoming/$(Split-Path $File -Leaf)"
        """,
    ),
    _t(
        "podcast/analytics/op3_export.sql",
        "t31_md5",
        False,
        """
        -- downloads per episode, deduplicated by hashed IP+UA (IAB 2.2 style)
        SELECT episode_guid, count(DISTINCT listener_hash) AS downloads
        FROM op3_downloads
        WHERE listener_hash NOT IN ('{V}', '{V2}')  -- our own monitoring probes
          AND ts >= date_trunc('month', now())
        GROUP BY episode_guid;
        """,
    ),
]

# ==================================================================== agencies, CI, ops notes
TEMPLATES += [
    _t(
        "agencies/pixelhaus/lumenplus-microsite/Dockerfile",
        "t31_npm",
        True,
        """
        FROM node:20-alpine AS build
        WORKDIR /app
        # private @pixelhaus/* packages; token of the agency's CI bot
        RUN echo "//registry.npmjs.org/:_authToken={V}" > .npmrc
        COPY package*.json ./
        RUN npm ci && rm -f .npmrc
        COPY . .
        RUN npm run build

        FROM nginx:1.27-alpine
        COPY --from=build /app/dist /usr/share/nginx/html
        """,
    ),
    _t(
        "agencies/pixelhaus/lumenplus-microsite/.gitlab-ci.yml",
        "t31_ref_ci",
        False,
        """
        stages: [build, deploy]

        build:
          stage: build
          image: docker:27
          services: [docker:27-dind]
          script:
            - docker login -u "$CI_REGISTRY_USER" -p "{V}" "$CI_REGISTRY"
            - docker build --build-arg NPM_TOKEN="{V2}" -t "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA" .
            - docker push "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"
        """,
    ),
    _t(
        "agencies/northgate-digital/handover/slack-export-2025-01.json",
        "t31_pw",
        True,
        """
        [
          {"ts": "1736850012.004100", "user": "U05NGD1A2", "user_name": "tom.northgate", "text": "deploying the election widget to staging now"},
          {"ts": "1736850140.004300", "user": "U02LFM8Q1", "user_name": "sara.lfm", "text": "thanks! the staging CMS admin is editor-staging@lumenfield.tv, password is {V} -- please change it after first login"},
          {"ts": "1736850222.004500", "user": "U05NGD1A2", "user_name": "tom.northgate", "text": "got it, in. also the SFTP for the asset drop still wants the old one?"},
          {"ts": "1736850301.004700", "user": "U02LFM8Q1", "user_name": "sara.lfm", "text": "no, sftp user ngd_assets now uses {V2}"}
        ]
        """,
    ),
    _t(
        "agencies/northgate-digital/handover/JIRA-LFM-4471.md",
        "t31_redacted",
        False,
        """
        **LFM-4471** Contractor access for Northgate Digital (election night graphics)

        - Status: Done
        - Reporter: sara.okonkwo
        - Assignee: it-service-desk

        > Created CMS accounts for 3 Northgate staff. Temporary password: `{V}`
        > (sent by SMS, forced reset on first login). SFTP key-only, no password.
        > Access expires 2025-03-31, revoked automatically by the IdP group `ext-northgate`.
        """,
    ),
    _t(
        "ops/logs/api-gateway-2025-03-02.log",
        "t31_basic_b64",
        True,
        """
        2025-03-02T03:14:07.112Z INFO  gw route=/v3/catalog status=200 dur=41ms
        2025-03-02T03:14:07.530Z DEBUG gw upstream request to partner-feed.lumenfield.tv headers={"Accept":"application/json","Authorization":"Basic {V}","X-Request-Id":"7e1c2a9b-4f3d-4a6e-9b8c-1d2e3f4a5b6c"}
        2025-03-02T03:14:07.611Z WARN  gw upstream partner-feed slow dur=812ms
        2025-03-02T03:14:08.002Z INFO  gw route=/v3/playback status=200 dur=19ms
        """,
    ),
    _t(
        "ops/runbooks/restore-cms-staging.md",
        "t31_doc_pw",
        False,
        """
        # Restoring the CMS staging database

        1. Take the latest snapshot name from `aws rds describe-db-snapshots`.
        2. Restore it, then point the staging app at it. The docs' connection string form is

               postgresql://cms:{V}@db.example.com:5432/cms

           replace the host and take the real password from Vault `cms/staging/db`.
        3. Run `make anonymise` before anyone from an agency gets access.
        """,
    ),
    _t(
        "ops/ansible/group_vars/streaming_origin/vault.yml",
        "t31_ansible_vault",
        False,
        """
        vault_wowza_admin_password: !vault |
          {IV}
        vault_icecast_source_password: !vault |
          {IV2}
        """,
    ),
]
