"""Blind part ``heldout10`` (held out: never tuned on): an everyday cross-section of the client
repositories of a small software consultancy (Northbeam Studio) and its clients: Copperleaf
Coffee (Rails shop), Harrowgate Veterinary (Django), Marisol Tours (Laravel, Spanish), Kanpai
Ramen (NestJS/Express, Japanese), Fjordline Freight (Spring Boot, Norwegian), Baumann Elektro
(ASP.NET Core, German), Ostrava Transit (Go services, Czech/Polish), Quokka Fitness (React Native
and Flutter apps, native Android/iOS) and Rivelle Pharma (notebooks, Airflow, dbt, Spark).
Files are web-app settings and .env files, mobile build configs (Gradle, fastlane, Xcode plists),
data/ML configs and notebooks, infrastructure code (Terraform, Pulumi, CloudFormation, Helm,
Kustomize, Ansible, Packer, Docker Compose, plain Kubernetes), CI/CD pipelines (GitHub Actions,
GitLab CI, CircleCI, Jenkins, Azure Pipelines, Buildkite), scripts (bash, PowerShell, Python,
Makefiles), tests and fixtures (Postman, VCR cassettes, Cypress, factories), and docs (READMEs,
runbooks, ADRs, onboarding pages, chat and e-mail pastes) in English, German, French, Spanish,
Portuguese, Polish, Dutch, Norwegian, Japanese and Ukrainian.

Written blind: the author saw only ``evalset.py`` and ``eval_tune15.py``, never the scanner,
its rules, its tests or its results. Credentials sit next to look-alikes under the same key
names: secret-store and environment references, placeholders, empty values, password hashes
in fixtures, encrypted values (Ansible Vault, SOPS, Sealed Secrets, Pulumi secure, Jasypt,
Rails credentials), lock-file checksums, image digests, ids, public keys and publishable
client tokens (Sentry DSN, Mapbox ``pk.``, Supabase anon key, Stripe ``pk_``), AWS's documented
example key, credentials on documentation hosts and clearly fake test values.
"""

from __future__ import annotations

import base64
import json
import string
import textwrap

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
ALNUM = string.ascii_letters + string.digits
DIG = string.digits
B32L = "abcdefghijklmnopqrstuvwxyz234567"
URLSAFE = ALNUM + "_-"


class Heldout10Values(evalset.Values):
    """Value generators of the heldout10 part; every name starts with ``h10_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "marmalade",
            "trillium",
            "kingfisher",
            "basalt",
            "nutmeg",
            "caravel",
            "wisteria",
            "otterburn",
            "lodestar",
            "quince",
        ]
        self.users = [
            "vetbook",
            "copperleaf",
            "deployer",
            "dbt_runner",
            "airflow",
            "fjordapp",
            "svc_ci",
            "mobile_api",
            "kanpai",
            "reporting_ro",
        ]
        self.clients = [
            "copperleaf",
            "harrowgate",
            "marisol",
            "fjordline",
            "kanpai",
            "baumann",
            "rivelle",
            "quokka",
            "ostrava",
        ]

    # -- helpers ----------------------------------------------------------------------------
    def _b64(self, n: int) -> str:
        return base64.b64encode(self.rng.randbytes(n)).decode()

    def _b64u(self, n: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(n)).decode().rstrip("=")

    def _jwt(self, payload: dict[str, object]) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.{self._b64u(32)}"

    # -- credentials --------------------------------------------------------------------------
    def h10_pw(self) -> str:
        rng = self.rng
        shape = rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(rng.randrange(2016, 2027)) + rng.choice("!?#$.")
        if shape == 1:
            return self.s(1, ALNUM) + self.s(rng.randrange(13, 23), ALNUM + "!#%&*+-_=?")
        if shape == 2:
            return f"{word}-{self.pick(self.words)}-{rng.randrange(10, 100)}"
        if shape == 3:
            return self.s(16, ALNUM)
        if shape == 4:
            return self.pick(self.clients).capitalize() + "_" + self.s(4, DIG) + rng.choice("!#")
        return word.replace("a", "4").replace("e", "3").capitalize() + self.s(2, DIG) + "!"

    def h10_weak(self) -> str:
        return self.pick(
            [
                "password",
                "postgres",
                "secret",
                "admin123",
                "Passw0rd!",
                "letmein",
                "qwerty123",
                "Welcome1",
                "root",
                "mysecretpassword",
                "test1234",
                "P@ssword1",
                self.pick(self.words) + "123",
                self.pick(self.clients) + str(self.rng.randrange(2019, 2026)),
                "admin",
            ]
        )

    def h10_urlpw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIG)
        return self.s(self.rng.randrange(14, 26), ALNUM)

    def h10_djkey(self) -> str:
        body = self.s(50, string.ascii_lowercase + DIG + "!@#%^&*(-_=+)")
        return ("django-insecure-" + body) if self.rng.randrange(2) else body

    def h10_railskb(self) -> str:
        return self.s(128, HEX)

    def h10_masterkey(self) -> str:
        return self.s(32, HEX)

    def h10_laravel(self) -> str:
        return "base64:" + self._b64(32)

    def h10_jwtsecret(self) -> str:
        rng = self.rng
        shape = rng.randrange(4)
        if shape == 0:
            return self.s(64, HEX)
        if shape == 1:
            return self._b64(48)
        if shape == 2:
            return (
                f"{self.pick(self.clients)}-{self.pick(self.words)}-jwt-{rng.randrange(1000, 9999)}"
            )
        return self.s(32, ALNUM)

    def h10_fernet(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(32)).decode()

    def h10_github(self) -> str:
        return self.github("ghp") if self.rng.randrange(3) else self.github_fine()

    def h10_gitlab(self) -> str:
        return self.gitlab()

    def h10_npm(self) -> str:
        return self.npm()

    def h10_awsyaml(self) -> str:
        return self.aws_yaml_pair()

    def h10_awsini(self) -> str:
        return self.aws_ini_pair()

    def h10_awstf(self) -> str:
        return self.aws_tf_pair()

    def h10_slackhook(self) -> str:
        return self.slack_webhook()

    def h10_slackbot(self) -> str:
        return self.slack()

    def h10_discord(self) -> str:
        return self.discord_webhook()

    def h10_stripe(self) -> str:
        return self.stripe() if self.rng.randrange(3) else self.stripe_restricted()

    def h10_whsec(self) -> str:
        return self.stripe_whsec()

    def h10_sendgrid(self) -> str:
        return self.sendgrid()

    def h10_twilio(self) -> str:
        return self.s(32, HEX)

    def h10_gkey(self) -> str:
        return self.google()

    def h10_fcm(self) -> str:
        return "AAAA" + self.s(7, URLSAFE) + ":APA91b" + self.s(134, URLSAFE)

    def h10_privkey(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pem("RSA PRIVATE KEY", self.rng.randrange(12, 17))
        if shape == 1:
            return self.pem("PRIVATE KEY", 13)
        if shape == 2:
            return self.pem("EC PRIVATE KEY", 3)
        return self.pem("OPENSSH PRIVATE KEY", 7)

    def h10_p8(self) -> str:
        return self.pem("PRIVATE KEY", 3)

    def h10_gcpkey(self) -> str:
        return self.gcp_private_key()

    def h10_basic(self) -> str:
        return self.basic()

    def h10_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "", "-2", "-3"])

    def h10_tfc(self) -> str:
        return self.tfc_token()

    def h10_azconn(self) -> str:
        account = self.pick(self.clients) + self.pick(["prodsa", "media", "backups", "stdata"])
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self._b64(64)};EndpointSuffix=core.windows.net"
        )

    def h10_azsecret(self) -> str:
        return self.azure_client_secret()

    def h10_adopat(self) -> str:
        return self.s(52, B32L)

    def h10_vault(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def h10_jenkins(self) -> str:
        return "11" + self.s(32, HEX)

    def h10_circleci(self) -> str:
        return f"CCIPAT_{self.s(22)}_{self.s(40, HEX)}"

    def h10_openai(self) -> str:
        return self.openai()

    def h10_hf(self) -> str:
        return self.huggingface()

    def h10_mapbox_sk(self) -> str:
        raw = json.dumps(
            {
                "u": self.pick(self.clients) + "-studio",
                "a": self.s(25, string.ascii_lowercase + DIG),
            },
            separators=(",", ":"),
        ).encode()
        body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"sk.{body}.{self.s(22, URLSAFE)}"

    def h10_supa_service(self) -> str:
        iat = 1690000000 + self.rng.randrange(10**7)
        return self._jwt(
            {
                "iss": "supabase",
                "ref": self.s(20, string.ascii_lowercase),
                "role": "service_role",
                "iat": iat,
                "exp": iat + 315360000,
            }
        )

    def h10_nrlicense(self) -> str:
        return self.s(36, HEX) + "NRAL"

    def h10_sentry_tok(self) -> str:
        return self.sentry_user()

    def h10_telegram(self) -> str:
        return self.telegram()

    def h10_shopify(self) -> str:
        return self.shopify()

    def h10_b64pw(self) -> str:
        return base64.b64encode(self.h10_pw().encode()).decode()

    def h10_vapid_priv(self) -> str:
        return self._b64u(32)

    def h10_mailgun(self) -> str:
        return self.mailgun()

    def h10_apikey(self) -> str:
        return self.pick([self.s(32, ALNUM), self.s(40, HEX), self.s(48, URLSAFE)])

    def h10_bearer(self) -> str:
        return self.pick([self.s(40, URLSAFE), self.h10_jwt_user()])

    def h10_jwt_user(self) -> str:
        iat = 1700000000 + self.rng.randrange(10**7)
        return self._jwt(
            {
                "sub": str(self.rng.randrange(1000, 99999)),
                "scope": "admin",
                "iat": iat,
                "exp": iat + 31536000,
            }
        )

    def h10_aws_spark(self) -> str:
        return (
            f"spark.hadoop.fs.s3a.access.key   {self.aws_id()}\n"
            f"spark.hadoop.fs.s3a.secret.key   {self.aws_secret()}"
        )

    # -- look-alikes -----------------------------------------------------------------------------
    def h10_ph(self) -> str:
        return self.pick(
            [
                "<your-password>",
                "CHANGE_ME",
                "changeme",
                "********",
                "xxxxxxxxxxxx",
                "REPLACE_ME",
                "<secret>",
                "your-secret-key",
                "TODO",
                "...",
                "<redacted>",
                "__PASSWORD__",
                "[REDACTED]",
                "<set in 1Password>",
            ]
        )

    def h10_empty(self) -> str:
        return self.pick(['""', "''", ""])

    def h10_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["DATABASE_PASSWORD"]',
                'os.getenv("SECRET_KEY")',
                'env("DJANGO_SECRET_KEY")',
                'config("DB_PASSWORD")',
                'getpass.getpass("Password: ")',
                'keyring.get_password("lims-export", "export_reader")',
            ]
        )

    def h10_ref_airflow(self) -> str:
        return self.pick(
            [
                'Variable.get("slack_webhook_url")',
                'BaseHook.get_connection("slack_alerts").password',
                'os.environ["SLACK_WEBHOOK_URL"]',
            ]
        )

    def h10_ref_spark(self) -> str:
        return self.pick(
            [
                'dbutils.secrets.get(scope="rivelle", key="lims-password")',
                'os.environ["LIMS_PASSWORD"]',
                'spark.conf.get("spark.rivelle.lims.password")',
            ]
        )

    def h10_ref_nb(self) -> str:
        return self.pick(
            [
                'getpass.getpass(\\"Snowflake password: \\")',
                'os.environ[\\"SNOWFLAKE_PASSWORD\\"]',
                'keyring.get_password(\\"snowflake\\", \\"ANALYST_JM\\")',
            ]
        )

    def h10_tfempty(self) -> str:
        return self.pick(['""', "null"])

    def h10_ref_rb(self) -> str:
        return self.pick(
            [
                "<%= ENV['DATABASE_PASSWORD'] %>",
                "<%= ENV.fetch('DB_PASSWORD') { '' } %>",
                "<%= Rails.application.credentials.dig(:aws, :secret_access_key) %>",
                "ENV.fetch('STRIPE_SECRET_KEY')",
                "Rails.application.credentials.secret_key_base",
            ]
        )

    def h10_ref_php(self) -> str:
        return self.pick(
            [
                "env('DB_PASSWORD')",
                "env('MAIL_PASSWORD', '')",
                "getenv('APP_KEY')",
                "$_ENV['STRIPE_SECRET']",
                "config('services.mailgun.secret')",
            ]
        )

    def h10_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.JWT_SECRET",
                "process.env.DATABASE_PASSWORD",
                "configService.get<string>('JWT_SECRET')",
                "process.env['STRIPE_KEY'] ?? ''",
                "Config.SUPABASE_SERVICE_KEY",
                "import.meta.env.VITE_API_TOKEN",
            ]
        )

    def h10_ref_java(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${SPRING_DATASOURCE_PASSWORD:}",
                "${vault.fjordline.db.password}",
                "${env.NEXUS_PASSWORD}",
                "${sm://fjordline-db-password}",
            ]
        )

    def h10_ref_cs(self) -> str:
        return self.pick(
            [
                'builder.Configuration["Jwt:Key"]',
                'Environment.GetEnvironmentVariable("SQL_PASSWORD")',
                'configuration.GetConnectionString("Default")',
                "_options.Value.ApiKey",
            ]
        )

    def h10_ref_go(self) -> str:
        return self.pick(
            [
                'os.Getenv("PG_PASSWORD")',
                'viper.GetString("database.password")',
                "cfg.Database.Password",
                'mustEnv("NATS_TOKEN")',
            ]
        )

    def h10_ref_sh(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                '"$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"',
                '"$(vault kv get -field=password secret/copperleaf/db)"',
                '"$(op read op://Clients/Harrowgate-DB/password)"',
                '"${PGPASSWORD:?PGPASSWORD must be set}"',
                '"$(cat /run/secrets/db_password)"',
            ]
        )

    def h10_ref_tf(self) -> str:
        return self.pick(
            [
                "var.db_password",
                "random_password.db.result",
                "data.aws_ssm_parameter.db_password.value",
                "azurerm_key_vault_secret.sql_admin.value",
                'jsondecode(data.aws_secretsmanager_secret_version.db.secret_string)["password"]',
            ]
        )

    def h10_ref_helm(self) -> str:
        return self.pick(
            [
                "{{ .Values.postgresql.auth.password | b64enc | quote }}",
                '{{ required "db password" .Values.db.password }}',
                '{{ include "app.dbPassword" . }}',
                "{{ .Values.global.redis.password }}",
            ]
        )

    def h10_ref_ans(self) -> str:
        return self.pick(
            [
                "{{ vault_db_password }}",
                "{{ lookup('env', 'DB_PASSWORD') }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=secret/data/app:password') }}",
                "{{ lookup('amazon.aws.aws_secret', 'prod/db') }}",
                "{{ app_db_password }}",
            ]
        )

    def h10_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:SQL_SA_PASSWORD",
                "(Get-Secret -Name BaumannSql -AsPlainText)",
                "(Read-Host -AsSecureString 'Password')",
                "$cred.GetNetworkCredential().Password",
            ]
        )

    def h10_cfn_ref(self) -> str:
        return self.pick(
            [
                "'{{resolve:secretsmanager:fjordline/booking-db:SecretString:password}}'",
                "!Ref DBPassword",
                "'{{resolve:ssm-secure:/fjordline/booking/db-password:3}}'",
                "!Sub '{{resolve:secretsmanager:${DBSecret}::password}}'",
            ]
        )

    def h10_ref_compose(self) -> str:
        return self.pick(
            [
                "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}",
                "${POSTGRES_PASSWORD}",
                "${DB_PASSWORD:-}",
                "${DB_PASSWORD?err}",
            ]
        )

    def h10_credstore(self) -> str:
        return self.pick(["desktop", "osxkeychain", "pass", "ecr-login", "wincred"])

    def h10_postman_var(self) -> str:
        return self.pick(["{{accessToken}}", "{{token}}", "{{vault:kanpai-staging-token}}"])

    def h10_encpem(self) -> str:
        if self.rng.randrange(2):
            return self.encrypted_key()
        return self.legacy_encrypted_key()

    def h10_nrjs(self) -> str:
        return "NRJS-" + self.s(19, HEX)

    def h10_ddpub(self) -> str:
        return "pub" + self.s(32, HEX)

    def h10_ref_dj(self) -> str:
        return self.pick(
            [
                'os.environ["DJANGO_SECRET_KEY"]',
                'env("DATABASE_PASSWORD")',
                'config("SECRET_KEY")',
                'os.getenv("DB_PASSWORD", "")',
                'get_secret("vetbook/prod")["password"]',
            ]
        )

    def h10_ref_kv(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-baumann-prod.vault.azure.net/secrets/SqlConnection/)",
                "@Microsoft.KeyVault(VaultName=kv-baumann-prod;SecretName=JwtKey)",
                "#{PortalSqlConnection}#",
                "__JwtKey__",
                "",
            ]
        )

    def h10_ref_fastlane(self) -> str:
        return self.pick(
            [
                'ENV["MATCH_GIT_BASIC_AUTHORIZATION"]',
                'ENV.fetch("MATCH_GIT_BASIC_AUTH")',
                "Base64.strict_encode64(\"quokka-ci:#{ENV['MATCH_GH_TOKEN']}\")",
            ]
        )

    def h10_ref_gha(self) -> str:
        return self.pick(
            [
                "${{ secrets.DOCKERHUB_TOKEN }}",
                "${{ secrets.NPM_TOKEN }}",
                "${{ secrets.SENTRY_AUTH_TOKEN }}",
                "${{ secrets.GH_PACKAGES_TOKEN }}",
            ]
        )

    def h10_ref_gitlab(self) -> str:
        return self.pick(["$CI_REGISTRY_PASSWORD", "$CI_JOB_TOKEN", "${CI_REGISTRY_PASSWORD}"])

    def h10_ref_circle(self) -> str:
        return self.pick(["${NPM_TOKEN}", "$NPM_TOKEN", "${QUOKKA_NPM_TOKEN}"])

    def h10_ref_ado(self) -> str:
        return self.pick(
            ["$(SqlAdminPassword)", "$(sql-admin-password)", "$env:SQL_ADMIN_PASSWORD"]
        )

    def h10_ref_casc(self) -> str:
        return self.pick(
            [
                "${JENKINS_ADMIN_PASSWORD}",
                "${readFile:/run/secrets/sonar-token}",
                "${SONAR_TOKEN}",
                "${decodeBase64:${ADMIN_PW_B64}}",
            ]
        )

    def _lang(self, strings: list[str]) -> str:
        return self.pick(strings)

    def h10_text_fr(self) -> str:
        return self._lang(
            [
                "Les deux mots de passe ne correspondent pas.",
                "Votre mot de passe doit contenir au moins 12 caractères.",
                "Mot de passe incorrect",
            ]
        )

    def h10_text_de(self) -> str:
        return self._lang(
            [
                "Das Passwort muss mindestens 12 Zeichen lang sein.",
                "Passwort ist zu kurz (mindestens %{count} Zeichen)",
                "Das Kennwort ist abgelaufen.",
            ]
        )

    def h10_text_es(self) -> str:
        return self._lang(
            [
                "La contraseña debe tener al menos :min caracteres.",
                "La contraseña es demasiado débil.",
                "Contraseña incorrecta",
            ]
        )

    def h10_text_pt(self) -> str:
        return self._lang(
            ["Senha inválida. Tente novamente.", "E-mail ou senha incorretos", "A senha expirou"]
        )

    def h10_text_nl(self) -> str:
        return self._lang(
            [
                "Wachtwoord is onjuist",
                "Het wachtwoord moet minimaal 8 tekens bevatten",
                "Wachtwoord vergeten?",
            ]
        )

    def h10_text_uk(self) -> str:
        return self._lang(["Невірний пароль", "Термін дії пароля минув", "Пароль занадто простий"])

    def h10_secretname(self) -> str:
        return self.pick(
            [
                "app-db-credentials",
                "postgres-auth",
                "regcred",
                "smtp-credentials",
                "copperleaf-secrets",
                "vetbook-env",
            ]
        )

    def h10_bcrypt(self) -> str:
        return self.bcrypt()

    def h10_pbkdf2(self) -> str:
        return self.pbkdf2_django()

    def h10_argon2(self) -> str:
        return self.argon2()

    def h10_sri(self) -> str:
        return self.sri()

    def h10_gosum(self) -> str:
        return "h1:" + self._b64(32)

    def h10_tflock(self) -> str:
        return self.pick(["h1:" + self._b64(32), "zh:" + self.s(64, HEX)])

    def h10_sha1(self) -> str:
        return self.s(40, HEX)

    def h10_sha256(self) -> str:
        return self.s(64, HEX)

    def h10_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def h10_uuid(self) -> str:
        return self.request_id()

    def h10_gitsha(self) -> str:
        return self.git_sha()

    def h10_arn(self) -> str:
        return self.secret_arn()

    def h10_fbappid(self) -> str:
        plat = self.pick(["android", "ios", "web"])
        return f"1:{self.s(12, DIG)}:{plat}:{self.s(16 if plat != 'web' else 22, HEX)}"

    def h10_sha1fp(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(20))

    def h10_teamid(self) -> str:
        return self.s(10, string.ascii_uppercase + DIG)

    def h10_sshpub(self) -> str:
        return self.ssh_public()

    def h10_pubpem(self) -> str:
        return self.public_pem()

    def h10_cert(self) -> str:
        return self.certificate()

    def h10_ansvault(self) -> str:
        return self.ansible_vault()

    def h10_sops(self) -> str:
        return self.sops_value()

    def h10_sealed(self) -> str:
        return self.sealed()

    def h10_pulsecure(self) -> str:
        return f"v1:{self._b64(12)}:{self._b64(self.rng.randrange(24, 60))}"

    def h10_railsenc(self) -> str:
        return self.tune6_rails_enc()

    def h10_jasypt(self) -> str:
        return "ENC(" + self._b64(self.pick([32, 48])) + ")"

    def h10_jenkins_enc(self) -> str:
        return self.tune6_jenkins_secret()

    def h10_docpw(self) -> str:
        return self.pick(self.words) + self.s(2, DIG)

    def h10_fake(self) -> str:
        return self.pick(
            [
                "fake-stripe-key",
                "dummy-token",
                "not-a-real-secret",
                "test_fake_api_key_000",
                "FAKE_TOKEN_FOR_TESTS",
                "mock-jwt-secret",
                "xoxb-fake-slack-token",
                "sk_test_fake",
            ]
        )

    def h10_awsexample(self) -> str:
        return (
            "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )

    def h10_sentrydsn(self) -> str:
        return (
            f"https://{self.s(32, HEX)}@o{self.rng.randrange(10**5, 10**7)}"
            f".ingest.sentry.io/{self.rng.randrange(10**6, 10**7)}"
        )

    def h10_mapbox_pk(self) -> str:
        raw = json.dumps(
            {
                "u": self.pick(self.clients) + "-studio",
                "a": self.s(25, string.ascii_lowercase + DIG),
            },
            separators=(",", ":"),
        ).encode()
        body = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return f"pk.{body}.{self.s(22, URLSAFE)}"

    def h10_supa_anon(self) -> str:
        iat = 1690000000 + self.rng.randrange(10**7)
        return self._jwt(
            {
                "iss": "supabase",
                "ref": self.s(20, string.ascii_lowercase),
                "role": "anon",
                "iat": iat,
                "exp": iat + 315360000,
            }
        )

    def h10_stripe_pk(self) -> str:
        return self.pick(["pk_live_", "pk_test_"]) + self.s(self.pick([24, 99]))

    def h10_redacted(self) -> str:
        return self.pick(["****", "[MASKED]", "[FILTERED]", "<hidden>", "***REDACTED***"])

    def h10_ga(self) -> str:
        return self.pick(["G-", "GTM-"]) + self.s(self.pick([7, 10]), string.ascii_uppercase + DIG)

    def h10_stripe_id(self) -> str:
        return "price_1" + self.s(23, ALNUM)

    def h10_vapid_pub(self) -> str:
        return base64.urlsafe_b64encode(b"\x04" + self.rng.randbytes(64)).decode().rstrip("=")

    def h10_png(self) -> str:
        return self.png_b64()

    def h10_alphabet(self) -> str:
        return self.tune7_alphabet()

    def h10_ghclient(self) -> str:
        return self.pick(["Iv1.", "Iv23li"]) + self.s(16, HEX)

    def h10_docker_ph(self) -> str:
        return self.pick(["${DOCKERHUB_TOKEN}", "$REGISTRY_PASSWORD", "$(cat ~/.docker-token)"])


VALUES = Heldout10Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = [
    # ================================================================ Django (Harrowgate vetbook)
    _t(
        "clients/harrowgate/vetbook/vetbook/settings/base.py",
        "h10_djkey",
        True,
        r"""
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent.parent

        # SECURITY WARNING: keep the secret key used in production secret!
        SECRET_KEY = "{V}"

        # SECURITY WARNING: don't run with debug turned on in production!
        DEBUG = False

        ALLOWED_HOSTS = ["vetbook.harrowgate-vets.co.uk", "localhost"]

        INSTALLED_APPS = [
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "appointments",
            "patients",
        ]
        """,
    ),
    _t(
        "clients/harrowgate/vetbook/vetbook/settings/production.py",
        "h10_ref_dj",
        False,
        r"""
        from .base import *  # noqa: F401,F403
        import os

        SECRET_KEY = {V}
        DEBUG = False

        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "vetbook",
                "USER": "vetbook",
                "PASSWORD": {V2},
                "HOST": os.environ.get("DATABASE_HOST", "localhost"),
                "PORT": "5432",
            }
        }
        """,
    ),
    _t(
        "clients/harrowgate/vetbook/.env",
        "h10_urlpw",
        True,
        r"""
        DJANGO_SETTINGS_MODULE=vetbook.settings.staging
        DATABASE_URL=postgres://vetbook:{V}@localhost:5432/vetbook
        REDIS_URL=redis://:{V2}@vetbook-cache.internal:6379/0
        CELERY_BROKER_URL=redis://:{V2}@vetbook-cache.internal:6379/1
        SENTRY_ENVIRONMENT=staging
        """,
    ),
    _t(
        "clients/harrowgate/vetbook/.env.example",
        "h10_ph",
        False,
        r"""
        # Copy to .env and fill in. Never commit the real .env.
        DJANGO_SETTINGS_MODULE=vetbook.settings.local
        DJANGO_SECRET_KEY={V}
        DATABASE_URL=postgres://vetbook:{V2}@localhost:5432/vetbook
        TWILIO_AUTH_TOKEN={V3}
        """,
    ),
    _t(
        "clients/harrowgate/vetbook/patients/fixtures/staff.json",
        "h10_pbkdf2",
        False,
        r"""
        [
          {
            "model": "auth.user",
            "pk": 1,
            "fields": {
              "username": "reception",
              "password": "{V}",
              "is_staff": true,
              "email": "reception@harrowgate-vets.co.uk"
            }
          },
          {
            "model": "auth.user",
            "pk": 2,
            "fields": {
              "username": "dr.ellis",
              "password": "{V2}",
              "is_staff": false
            }
          }
        ]
        """,
    ),
    _t(
        "clients/harrowgate/vetbook/locale/fr/LC_MESSAGES/django.po",
        "h10_text_fr",
        False,
        r"""
        #: accounts/forms.py:41
        msgid "Password"
        msgstr "Mot de passe"

        #: accounts/forms.py:58
        msgid "The two password fields didn't match."
        msgstr "{V}"

        #: accounts/templates/accounts/login.html:22
        msgid "Forgot your password?"
        msgstr "Mot de passe oublié ?"
        """,
    ),
    _t(
        "clients/harrowgate/vetbook/vetbook/settings/test.py",
        "h10_fake",
        False,
        r"""
        from .base import *  # noqa: F401,F403

        SECRET_KEY = "{V}"
        PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        TWILIO_ACCOUNT_SID = "ACtest"
        TWILIO_AUTH_TOKEN = "{V2}"
        EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        """,
    ),
    _t(
        "clients/harrowgate/vetbook/appointments/sms.py",
        "h10_twilio",
        True,
        r"""
        from twilio.rest import Client

        # TODO(sam): move to settings before go-live
        ACCOUNT_SID = "AC3f1c9b0e5d7a44c2b8e6a90f1d2c3b4a"
        AUTH_TOKEN = "{V}"
        FROM_NUMBER = "+441632960123"


        def send_reminder(phone: str, pet: str, when: str) -> None:
            client = Client(ACCOUNT_SID, AUTH_TOKEN)
            client.messages.create(
                to=phone,
                from_=FROM_NUMBER,
                body=f"Reminder: {pet} has an appointment at Harrowgate Vets on {when}.",
            )
        """,
    ),
    # ================================================================ Rails (Copperleaf shop)
    _t(
        "clients/copperleaf/shop/config/database.yml",
        "h10_pw",
        True,
        r"""
        default: &default
          adapter: postgresql
          encoding: unicode
          pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

        development:
          <<: *default
          database: copperleaf_development

        test:
          <<: *default
          database: copperleaf_test

        production:
          <<: *default
          database: copperleaf_production
          username: copperleaf
          password: {V}
          host: copperleaf-prod.c9xk2lq8hz.eu-central-1.rds.amazonaws.com
        """,
    ),
    _t(
        "clients/copperleaf/shop/config/database.production.yml",
        "h10_ref_rb",
        False,
        r"""
        production:
          adapter: postgresql
          database: copperleaf_production
          username: copperleaf
          password: {V}
          host: <%= ENV['DATABASE_HOST'] %>
          pool: 10
        """,
    ),
    _t(
        "clients/copperleaf/shop/config/secrets.yml",
        "h10_railskb",
        True,
        r"""
        # Legacy from the Rails 4 days; still read by the admin engine.
        development:
          secret_key_base: {V}

        test:
          secret_key_base: {V2}

        production:
          secret_key_base: {V3}
        """,
    ),
    _t(
        "clients/copperleaf/shop/config/master.key",
        "h10_masterkey",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "clients/copperleaf/shop/config/credentials.yml.enc",
        "h10_railsenc",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "clients/copperleaf/shop/db/seeds.rb",
        "h10_weak",
        True,
        r"""
        # Seeds for the staging shop; run with bin/rails db:seed
        AdminUser.find_or_create_by!(email: "ops@copperleafcoffee.com") do |u|
          u.password = "{V}"
          u.password_confirmation = "{V}"
        end

        %w[Espresso Filter Decaf].each_with_index do |name, i|
          Category.find_or_create_by!(name: name, position: i)
        end
        """,
    ),
    _t(
        "clients/copperleaf/shop/config/locales/devise.de.yml",
        "h10_text_de",
        False,
        r"""
        de:
          devise:
            failure:
              invalid: "E-Mail oder Passwort ungültig."
              locked: "Ihr Konto ist gesperrt."
            passwords:
              too_short: "{V}"
              updated: "Ihr Passwort wurde geändert."
        """,
    ),
    _t(
        "clients/copperleaf/shop/Gemfile.lock",
        "h10_sha256",
        False,
        r"""
        GEM
          remote: https://rubygems.org/
          specs:
            devise (4.9.4)
            stripe (10.15.0)

        PLATFORMS
          x86_64-linux

        CHECKSUMS
          devise (4.9.4) sha256={V}
          stripe (10.15.0) sha256={V2}

        BUNDLED WITH
           2.5.11
        """,
    ),
    _t(
        "clients/copperleaf/shop/config/initializers/stripe.rb",
        "h10_stripe",
        True,
        r"""
        # frozen_string_literal: true

        Stripe.api_key = ENV.fetch("STRIPE_SECRET_KEY", "{V}")
        Stripe.api_version = "2024-06-20"

        Rails.configuration.stripe = {
          publishable_key: ENV["STRIPE_PUBLISHABLE_KEY"],
          webhook_secret: ENV["STRIPE_WEBHOOK_SECRET"]
        }
        """,
    ),
    _t(
        "clients/copperleaf/shop/config/initializers/stripe_publishable.rb",
        "h10_stripe_pk",
        False,
        r"""
        # frozen_string_literal: true

        # The publishable key is embedded in checkout.js anyway.
        Rails.configuration.x.stripe_publishable_key = "{V}"
        """,
    ),
    _t(
        "clients/copperleaf/shop/spec/factories/users.rb",
        "h10_weak",
        True,
        r"""
        FactoryBot.define do
          factory :user do
            sequence(:email) { |n| "customer#{n}@copperleafcoffee.test" }
            password { "{V}" }
            confirmed_at { Time.current }

            trait :admin do
              admin { true }
            end
          end
        end
        """,
    ),
    _t(
        "clients/copperleaf/shop/spec/fixtures/vcr_cassettes/stripe_checkout.yml",
        "h10_redacted",
        False,
        r"""
        ---
        http_interactions:
        - request:
            method: post
            uri: https://api.stripe.com/v1/checkout/sessions
            body:
              encoding: UTF-8
              string: mode=payment&success_url=https%3A%2F%2Fshop.test%2Fthanks
            headers:
              Authorization:
              - Bearer {V}
              Stripe-Version:
              - '2024-06-20'
          response:
            status:
              code: 200
              message: OK
        recorded_with: VCR 6.2.0
        """,
    ),
    _t(
        "clients/copperleaf/shop/spec/fixtures/vcr_cassettes/shopify_sync.yml",
        "h10_shopify",
        True,
        r"""
        ---
        http_interactions:
        - request:
            method: get
            uri: https://copperleaf-coffee.myshopify.com/admin/api/2024-04/products.json?limit=50
            body:
              encoding: US-ASCII
              string: ''
            headers:
              X-Shopify-Access-Token:
              - {V}
              Accept:
              - application/json
          response:
            status:
              code: 200
              message: OK
        recorded_with: VCR 6.2.0
        """,
    ),
    # ================================================================ Laravel (Marisol Tours)
    _t(
        "clients/marisol/reservas/.env",
        "h10_laravel",
        True,
        r"""
        APP_NAME="Marisol Tours"
        APP_ENV=production
        APP_KEY={V}
        APP_DEBUG=false
        APP_URL=https://reservas.marisoltours.es

        LOG_CHANNEL=stack
        DB_CONNECTION=mysql
        DB_HOST=127.0.0.1
        DB_PORT=3306
        DB_DATABASE=reservas
        DB_USERNAME=reservas
        """,
    ),
    _t(
        "clients/marisol/reservas/.env.example",
        "h10_empty",
        False,
        r"""
        APP_NAME=Laravel
        APP_ENV=local
        APP_KEY={V}
        APP_DEBUG=true

        DB_CONNECTION=mysql
        DB_HOST=127.0.0.1
        DB_USERNAME=root
        DB_PASSWORD={V2}

        MAILGUN_SECRET={V3}
        """,
    ),
    _t(
        "clients/marisol/reservas/config/database.php",
        "h10_ref_php",
        False,
        r"""
        <?php

        return [
            'default' => env('DB_CONNECTION', 'mysql'),
            'connections' => [
                'mysql' => [
                    'driver' => 'mysql',
                    'host' => env('DB_HOST', '127.0.0.1'),
                    'database' => env('DB_DATABASE', 'forge'),
                    'username' => env('DB_USERNAME', 'forge'),
                    'password' => {V},
                    'charset' => 'utf8mb4',
                ],
            ],
        ];
        """,
    ),
    _t(
        "clients/marisol/reservas/lang/es/passwords.php",
        "h10_text_es",
        False,
        r"""
        <?php

        return [
            'reset' => 'Tu contraseña ha sido restablecida.',
            'sent' => 'Te hemos enviado por correo el enlace para restablecer tu contraseña.',
            'token' => 'El token de restablecimiento de contraseña es inválido.',
            'user' => 'No encontramos ningún usuario con ese correo electrónico.',
            'min' => '{V}',
        ];
        """,
    ),
    _t(
        "clients/marisol/reservas/phpunit.xml",
        "h10_weak",
        True,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <phpunit bootstrap="vendor/autoload.php" colors="true">
            <testsuites>
                <testsuite name="Feature">
                    <directory>tests/Feature</directory>
                </testsuite>
            </testsuites>
            <php>
                <env name="APP_ENV" value="testing"/>
                <env name="DB_CONNECTION" value="mysql"/>
                <env name="DB_HOST" value="mysql-ci.marisol.internal"/>
                <env name="DB_DATABASE" value="reservas_test"/>
                <env name="DB_USERNAME" value="ci"/>
                <env name="DB_PASSWORD" value="{V}"/>
            </php>
        </phpunit>
        """,
    ),
    _t(
        "clients/marisol/reservas/config/services.php",
        "h10_mailgun",
        True,
        r"""
        <?php

        return [
            'mailgun' => [
                'domain' => 'mg.marisoltours.es',
                'secret' => env('MAILGUN_SECRET', '{V}'),
                'endpoint' => 'api.eu.mailgun.net',
                'scheme' => 'https',
            ],
            'stripe' => [
                'key' => env('STRIPE_KEY'),
                'secret' => env('STRIPE_SECRET'),
            ],
        ];
        """,
    ),
    _t(
        "clients/marisol/reservas/composer.lock",
        "h10_sha1",
        False,
        r"""
        {
            "_readme": [
                "This file locks the dependencies of your project to a known state"
            ],
            "content-hash": "{V}",
            "packages": [
                {
                    "name": "laravel/framework",
                    "version": "v11.9.2",
                    "dist": {
                        "type": "zip",
                        "url": "https://api.github.com/repos/laravel/framework/zipball/2b3e8d2f",
                        "reference": "{V2}",
                        "shasum": ""
                    }
                }
            ]
        }
        """,
    ),
    # ================================================================ NestJS / Express (Kanpai)
    _t(
        "clients/kanpai/order-api/src/auth/auth.module.ts",
        "h10_jwtsecret",
        True,
        r"""
        import { Module } from '@nestjs/common';
        import { JwtModule } from '@nestjs/jwt';
        import { PassportModule } from '@nestjs/passport';
        import { AuthService } from './auth.service';
        import { JwtStrategy } from './jwt.strategy';

        export const jwtConstants = {
          secret: '{V}',
        };

        @Module({
          imports: [
            PassportModule,
            JwtModule.register({
              secret: jwtConstants.secret,
              signOptions: { expiresIn: '1h' },
            }),
          ],
          providers: [AuthService, JwtStrategy],
          exports: [AuthService],
        })
        export class AuthModule {}
        """,
    ),
    _t(
        "clients/kanpai/order-api/src/config/configuration.ts",
        "h10_ref_js",
        False,
        r"""
        export default () => ({
          port: parseInt(process.env.PORT ?? '3000', 10),
          jwt: {
            secret: {V},
            expiresIn: process.env.JWT_EXPIRES_IN ?? '15m',
          },
          database: {
            url: process.env.DATABASE_URL,
            password: {V2},
          },
        });
        """,
    ),
    _t(
        "clients/kanpai/order-api/ormconfig.ts",
        "h10_pw",
        True,
        r"""
        import { DataSource } from 'typeorm';

        // used by `npm run migration:run` against the shared staging DB
        export default new DataSource({
          type: 'postgres',
          host: 'kanpai-staging.postgres.database.azure.com',
          port: 5432,
          username: 'kanpai_admin',
          password: '{V}',
          database: 'orders',
          ssl: { rejectUnauthorized: false },
          entities: ['dist/**/*.entity.js'],
          migrations: ['dist/migrations/*.js'],
        });
        """,
    ),
    _t(
        "clients/kanpai/order-api/package-lock.json",
        "h10_sri",
        False,
        r"""
        {
          "name": "kanpai-order-api",
          "version": "1.8.0",
          "lockfileVersion": 3,
          "packages": {
            "node_modules/@nestjs/jwt": {
              "version": "10.2.0",
              "resolved": "https://registry.npmjs.org/@nestjs/jwt/-/jwt-10.2.0.tgz",
              "integrity": "{V}"
            },
            "node_modules/jsonwebtoken": {
              "version": "9.0.2",
              "resolved": "https://registry.npmjs.org/jsonwebtoken/-/jsonwebtoken-9.0.2.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
    ),
    _t(
        "clients/kanpai/order-api/test/auth.e2e-spec.ts",
        "h10_fake",
        False,
        r"""
        import { Test } from '@nestjs/testing';
        import { JwtService } from '@nestjs/jwt';

        describe('Auth (e2e)', () => {
          const jwt = new JwtService({ secret: '{V}' });

          it('rejects a token signed with another key', async () => {
            const token = jwt.sign({ sub: 1 }, { secret: '{V2}' });
            const res = await request(app.getHttpServer())
              .get('/orders')
              .set('Authorization', `Bearer ${token}`);
            expect(res.status).toBe(401);
          });
        });
        """,
    ),
    _t(
        "clients/kanpai/order-api/.npmrc",
        "h10_npm",
        True,
        r"""
        @kanpai:registry=https://npm.pkg.github.com
        //registry.npmjs.org/:_authToken={V}
        save-exact=true
        """,
    ),
    _t(
        "clients/kanpai/menu-web/.npmrc",
        "h10_docker_ph",
        False,
        r"""
        @northbeam:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        engine-strict=true
        """,
    ),
    _t(
        "clients/kanpai/order-api/src/payments/stripe.webhook.ts",
        "h10_whsec",
        True,
        r"""
        import Stripe from 'stripe';

        const stripe = new Stripe(process.env.STRIPE_SECRET_KEY!, { apiVersion: '2024-06-20' });
        // 本番用の署名シークレット(Dashboard > Webhooks からコピー)
        const endpointSecret = '{V}';

        export function verify(raw: Buffer, signature: string): Stripe.Event {
          return stripe.webhooks.constructEvent(raw, signature, endpointSecret);
        }
        """,
    ),
    _t(
        "clients/kanpai/order-api/docs/api.md",
        "h10_ph",
        False,
        r"""
        # Kanpai Order API

        ## 認証 (Authentication)

        すべてのリクエストに `Authorization` ヘッダーが必要です:

            curl -H "Authorization: Bearer {V}" https://api.kanpai-ramen.jp/v1/orders

        トークンは `/v1/auth/login` で取得します。
        """,
    ),
    _t(
        "clients/kanpai/legacy-express/app.js",
        "h10_weak",
        True,
        r"""
        const express = require('express');
        const session = require('express-session');
        const basicAuth = require('express-basic-auth');

        const app = express();
        app.use(session({ secret: process.env.SESSION_SECRET, resave: false, saveUninitialized: false }));

        // staff dashboard; replaced by the Nest admin in 2023 but still deployed
        app.use('/admin', basicAuth({
          users: { staff: '{V}' },
          challenge: true,
        }));

        app.listen(process.env.PORT || 8080);
        """,
    ),
    # ================================================================ Spring Boot (Fjordline)
    _t(
        "clients/fjordline/booking-service/src/main/resources/application.yml",
        "h10_pw",
        True,
        r"""
        spring:
          application:
            name: booking-service
          datasource:
            url: jdbc:postgresql://fjordline-db.internal:5432/booking
            username: booking_app
            password: {V}
          jpa:
            hibernate:
              ddl-auto: validate
          rabbitmq:
            host: mq.fjordline.internal
            username: booking
            password: {V2}
        server:
          port: 8080
        """,
    ),
    _t(
        "clients/fjordline/booking-service/src/main/resources/application-prod.yml",
        "h10_ref_java",
        False,
        r"""
        spring:
          datasource:
            url: jdbc:postgresql://${DB_HOST}:5432/booking
            username: booking_app
            password: {V}
          rabbitmq:
            password: {V2}
        management:
          endpoints:
            web:
              exposure:
                include: health,info,prometheus
        """,
    ),
    _t(
        "clients/fjordline/booking-service/src/main/resources/application-jasypt.properties",
        "h10_jasypt",
        False,
        r"""
        # Verdiene er kryptert med jasypt; nøkkelen ligger i JASYPT_ENCRYPTOR_PASSWORD på serveren
        spring.datasource.username=booking_app
        spring.datasource.password={V}
        spring.mail.password={V2}
        jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
        """,
    ),
    _t(
        "clients/fjordline/booking-service/src/test/resources/application-test.yml",
        "h10_empty",
        False,
        r"""
        spring:
          datasource:
            url: jdbc:h2:mem:booking;MODE=PostgreSQL;DB_CLOSE_DELAY=-1
            username: sa
            password: {V}
          flyway:
            enabled: true
        """,
    ),
    _t(
        "clients/fjordline/booking-service/.mvn/settings.xml",
        "h10_pw",
        True,
        r"""
        <settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
          <servers>
            <server>
              <id>fjordline-nexus</id>
              <username>ci-deployer</username>
              <password>{V}</password>
            </server>
          </servers>
          <mirrors>
            <mirror>
              <id>fjordline-nexus</id>
              <url>https://nexus.fjordline.no/repository/maven-public/</url>
              <mirrorOf>*</mirrorOf>
            </mirror>
          </mirrors>
        </settings>
        """,
    ),
    _t(
        "clients/fjordline/tracking-service/.mvn/settings.xml",
        "h10_ref_java",
        False,
        r"""
        <settings>
          <servers>
            <server>
              <id>fjordline-nexus</id>
              <username>${env.NEXUS_USER}</username>
              <password>{V}</password>
            </server>
          </servers>
        </settings>
        """,
    ),
    _t(
        "clients/fjordline/booking-service/src/main/resources/logback-spring.xml",
        "h10_sentrydsn",
        False,
        r"""
        <configuration>
          <include resource="org/springframework/boot/logging/logback/defaults.xml"/>
          <appender name="SENTRY" class="io.sentry.logback.SentryAppender">
            <options>
              <dsn>{V}</dsn>
              <environment>production</environment>
            </options>
            <minimumEventLevel>WARN</minimumEventLevel>
          </appender>
          <root level="INFO">
            <appender-ref ref="SENTRY"/>
          </root>
        </configuration>
        """,
    ),
    _t(
        "clients/fjordline/booking-service/src/main/java/no/fjordline/booking/config/JwtConfig.java",
        "h10_jwtsecret",
        True,
        r"""
        package no.fjordline.booking.config;

        import io.jsonwebtoken.security.Keys;
        import javax.crypto.SecretKey;
        import java.nio.charset.StandardCharsets;

        public final class JwtConfig {
            // TODO flytt til Vault før produksjon
            private static final String SIGNING_KEY = "{V}";

            public static SecretKey key() {
                return Keys.hmacShaKeyFor(SIGNING_KEY.getBytes(StandardCharsets.UTF_8));
            }

            private JwtConfig() {}
        }
        """,
    ),
    # ================================================================ ASP.NET Core (Baumann Elektro)
    _t(
        "clients/baumann/Baumann.Portal/appsettings.json",
        "h10_pw",
        True,
        r"""
        {
          "Logging": {
            "LogLevel": {
              "Default": "Information",
              "Microsoft.AspNetCore": "Warning"
            }
          },
          "ConnectionStrings": {
            "Default": "Server=tcp:baumann-sql.database.windows.net,1433;Initial Catalog=Portal;User ID=portal_app;Password={V};Encrypt=True;TrustServerCertificate=False;"
          },
          "Smtp": {
            "Host": "smtp.office365.com",
            "User": "noreply@baumann-elektro.de",
            "Password": "{V2}"
          },
          "AllowedHosts": "*"
        }
        """,
    ),
    _t(
        "clients/baumann/Baumann.Portal/appsettings.Production.json",
        "h10_ref_kv",
        False,
        r"""
        {
          "KeyVault": {
            "Uri": "https://kv-baumann-prod.vault.azure.net/"
          },
          "ConnectionStrings": {
            "Default": "{V}"
          },
          "Jwt": {
            "Issuer": "https://portal.baumann-elektro.de",
            "Key": "{V2}"
          }
        }
        """,
    ),
    _t(
        "clients/baumann/Baumann.Portal/Program.cs",
        "h10_ref_cs",
        False,
        r"""
        var builder = WebApplication.CreateBuilder(args);

        var jwtKey = {V};
        builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme)
            .AddJwtBearer(o =>
            {
                o.TokenValidationParameters = new TokenValidationParameters
                {
                    ValidIssuer = builder.Configuration["Jwt:Issuer"],
                    IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(jwtKey)),
                };
            });

        var app = builder.Build();
        app.Run();
        """,
    ),
    _t(
        "clients/baumann/Baumann.Portal/NuGet.Config",
        "h10_adopat",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
          <packageSources>
            <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
            <add key="baumann-feed" value="https://pkgs.dev.azure.com/baumann-elektro/_packaging/internal/nuget/v3/index.json" />
          </packageSources>
          <packageSourceCredentials>
            <baumann-feed>
              <add key="Username" value="build" />
              <add key="ClearTextPassword" value="{V}" />
            </baumann-feed>
          </packageSourceCredentials>
        </configuration>
        """,
    ),
    _t(
        "clients/baumann/Baumann.Portal/Resources/SharedResource.de.resx",
        "h10_text_de",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <root>
          <data name="PasswordTooShort" xml:space="preserve">
            <value>{V}</value>
          </data>
          <data name="PasswordLabel" xml:space="preserve">
            <value>Passwort</value>
          </data>
          <data name="ResetPassword" xml:space="preserve">
            <value>Passwort zurücksetzen</value>
          </data>
        </root>
        """,
    ),
    _t(
        "clients/baumann/Baumann.Portal/Properties/launchSettings.json",
        "h10_uuid",
        False,
        r"""
        {
          "profiles": {
            "https": {
              "commandName": "Project",
              "applicationUrl": "https://localhost:7081;http://localhost:5081",
              "environmentVariables": {
                "ASPNETCORE_ENVIRONMENT": "Development",
                "AZURE_CLIENT_ID": "{V}",
                "AZURE_TENANT_ID": "{V2}"
              }
            }
          }
        }
        """,
    ),
    _t(
        "clients/baumann/Baumann.Portal.Tests/IntegrationFixture.cs",
        "h10_weak",
        True,
        r"""
        public class IntegrationFixture : IAsyncLifetime
        {
            private readonly MsSqlContainer _sql = new MsSqlBuilder()
                .WithImage("mcr.microsoft.com/mssql/server:2022-latest")
                .Build();

            // shared test instance on the build agent, used when Docker is not available
            public const string FallbackConnection =
                "Server=buildagent03.baumann.local;Database=PortalTests;User Id=sa;Password={V};TrustServerCertificate=True";

            public Task InitializeAsync() => _sql.StartAsync();
            public Task DisposeAsync() => _sql.DisposeAsync().AsTask();
        }
        """,
    ),
    # ================================================================ Go services (Ostrava Transit)
    _t(
        "clients/ostrava/departures/internal/store/postgres.go",
        "h10_urlpw",
        True,
        r"""
        package store

        import (
        	"context"

        	"github.com/jackc/pgx/v5/pgxpool"
        )

        // defaultDSN is used when PG_DSN is unset (local runs against the shared dev DB).
        const defaultDSN = "postgres://departures:{V}@dev-db.ostrava-transit.cz:5432/departures?sslmode=require"

        func Connect(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
        	if dsn == "" {
        		dsn = defaultDSN
        	}
        	return pgxpool.New(ctx, dsn)
        }
        """,
    ),
    _t(
        "clients/ostrava/departures/internal/config/config.go",
        "h10_ref_go",
        False,
        r"""
        package config

        type Config struct {
        	DBHost     string
        	DBPassword string
        	NATSToken  string
        }

        func Load() Config {
        	return Config{
        		DBHost:     os.Getenv("PG_HOST"),
        		DBPassword: {V},
        		NATSToken:  {V2},
        	}
        }
        """,
    ),
    _t(
        "clients/ostrava/departures/config/config.dev.yaml",
        "h10_pw",
        True,
        r"""
        http:
          addr: ":8080"
        database:
          host: dev-db.ostrava-transit.cz
          user: departures
          password: "{V}"
          name: departures
        nats:
          url: nats://nats.dev.ostrava-transit.cz:4222
          token: "{V2}"
        """,
    ),
    _t(
        "clients/ostrava/departures/go.sum",
        "h10_gosum",
        False,
        r"""
        github.com/jackc/pgx/v5 v5.6.0 {V}
        github.com/jackc/pgx/v5 v5.6.0/go.mod {V2}
        github.com/nats-io/nats.go v1.36.0 {V3}
        github.com/nats-io/nats.go v1.36.0/go.mod {V4}
        """,
    ),
    _t(
        "clients/ostrava/departures/internal/gtfs/client_test.go",
        "h10_fake",
        False,
        r"""
        package gtfs

        import "testing"

        func TestClientSendsAPIKey(t *testing.T) {
        	srv := newFakeServer(t, "{V}")
        	c := NewClient(srv.URL, "{V}")
        	if _, err := c.Feed(); err != nil {
        		t.Fatalf("feed: %v", err)
        	}
        }
        """,
    ),
    _t(
        "clients/ostrava/departures/cmd/importer/main.go",
        "h10_apikey",
        True,
        r"""
        package main

        import (
        	"log"
        	"net/http"
        )

        // API klíč pro data z portálu dopravce (sdílený účet Northbeam)
        const feedAPIKey = "{V}"

        func main() {
        	req, _ := http.NewRequest("GET", "https://api.golemio.cz/v2/gtfs/trips", nil)
        	req.Header.Set("X-Access-Token", feedAPIKey)
        	resp, err := http.DefaultClient.Do(req)
        	if err != nil {
        		log.Fatal(err)
        	}
        	defer resp.Body.Close()
        }
        """,
    ),
    # ================================================================ Mobile (Quokka Fitness)
    _t(
        "clients/quokka/app-rn/.env",
        "h10_mapbox_pk",
        False,
        r"""
        API_URL=https://api.quokkafitness.com.au
        MAPBOX_ACCESS_TOKEN={V}
        SENTRY_ENVIRONMENT=production
        """,
    ),
    _t(
        "clients/quokka/app-rn/scripts/download-offline-tiles.js",
        "h10_mapbox_sk",
        True,
        r"""
        // Downloads the offline style packs for the run-tracking screen.
        // Needs a secret token with styles:tiles and downloads:read scopes.
        const MAPBOX_DOWNLOADS_TOKEN = '{V}';

        const fetch = require('node-fetch');

        async function main() {
          const url = `https://api.mapbox.com/styles/v1/quokka/ck9runs/tiles?access_token=${MAPBOX_DOWNLOADS_TOKEN}`;
          const res = await fetch(url);
          console.log(res.status);
        }

        main();
        """,
    ),
    _t(
        "clients/quokka/app-rn/src/lib/supabase.ts",
        "h10_supa_anon",
        False,
        r"""
        import 'react-native-url-polyfill/auto';
        import AsyncStorage from '@react-native-async-storage/async-storage';
        import { createClient } from '@supabase/supabase-js';

        const supabaseUrl = 'https://qkfitxyzprojref.supabase.co';
        const supabaseAnonKey = '{V}';

        export const supabase = createClient(supabaseUrl, supabaseAnonKey, {
          auth: { storage: AsyncStorage, autoRefreshToken: true, persistSession: true },
        });
        """,
    ),
    _t(
        "clients/quokka/app-rn/scripts/seed-workouts.ts",
        "h10_supa_service",
        True,
        r"""
        import { createClient } from '@supabase/supabase-js';
        import workouts from './workouts.json';

        // service role: bypasses RLS, only for this seed script
        const supabase = createClient(
          'https://qkfitxyzprojref.supabase.co',
          '{V}',
        );

        async function run() {
          const { error } = await supabase.from('workouts').upsert(workouts);
          if (error) throw error;
        }

        run();
        """,
    ),
    _t(
        "clients/quokka/app-rn/android/sentry.properties",
        "h10_sentry_tok",
        True,
        r"""
        defaults.url=https://sentry.io/
        defaults.org=northbeam-studio
        defaults.project=quokka-android
        auth.token={V}
        """,
    ),
    _t(
        "clients/quokka/app-rn/ios/sentry.properties",
        "h10_empty",
        False,
        r"""
        defaults.url=https://sentry.io/
        defaults.org=northbeam-studio
        defaults.project=quokka-ios
        # auth.token comes from SENTRY_AUTH_TOKEN in CI; leave empty here
        auth.token={V}
        """,
    ),
    _t(
        "clients/quokka/app-rn/android/gradle.properties",
        "h10_pw",
        True,
        r"""
        org.gradle.jvmargs=-Xmx2048m -XX:MaxMetaspaceSize=512m
        android.useAndroidX=true
        newArchEnabled=false
        hermesEnabled=true

        QUOKKA_UPLOAD_STORE_FILE=quokka-upload.keystore
        QUOKKA_UPLOAD_KEY_ALIAS=quokka-upload
        QUOKKA_UPLOAD_STORE_PASSWORD={V}
        QUOKKA_UPLOAD_KEY_PASSWORD={V}
        """,
    ),
    _t(
        "clients/quokka/app-rn/android/app/build.gradle",
        "h10_ph",
        False,
        r"""
        android {
            namespace "au.com.quokkafitness"
            signingConfigs {
                debug {
                    storeFile file('debug.keystore')
                    storePassword 'android'
                    keyAlias 'androiddebugkey'
                    keyPassword 'android'
                }
                release {
                    storeFile file(QUOKKA_UPLOAD_STORE_FILE)
                    storePassword System.getenv("UPLOAD_STORE_PASSWORD") ?: "{V}"
                    keyAlias QUOKKA_UPLOAD_KEY_ALIAS
                    keyPassword System.getenv("UPLOAD_KEY_PASSWORD") ?: "{V2}"
                }
            }
        }
        """,
    ),
    _t(
        "clients/quokka/app-rn/ios/Podfile.lock",
        "h10_sha1",
        False,
        r"""
        PODS:
          - Sentry/HybridSDK (8.29.1)
          - RNSentry (5.24.1):
            - Sentry/HybridSDK (= 8.29.1)

        SPEC CHECKSUMS:
          RNSentry: {V}
          Sentry: {V2}

        PODFILE CHECKSUM: {V3}

        COCOAPODS: 1.15.2
        """,
    ),
    _t(
        "clients/quokka/app-rn/src/i18n/pt-BR.json",
        "h10_text_pt",
        False,
        r"""
        {
          "login": {
            "email": "E-mail",
            "password": "Senha",
            "forgot": "Esqueceu a senha?",
            "error": "{V}"
          }
        }
        """,
    ),
    _t(
        "clients/quokka/app-flutter/android/key.properties",
        "h10_pw",
        True,
        r"""
        storePassword={V}
        keyPassword={V2}
        keyAlias=upload
        storeFile=/Users/dana/keys/quokka-upload.jks
        """,
    ),
    _t(
        "clients/quokka/app-flutter/pubspec.lock",
        "h10_sha256",
        False,
        r"""
        packages:
          http:
            dependency: "direct main"
            description:
              name: http
              sha256: "{V}"
              url: "https://pub.dev"
            source: hosted
            version: "1.2.1"
          supabase_flutter:
            dependency: "direct main"
            description:
              name: supabase_flutter
              sha256: "{V2}"
              url: "https://pub.dev"
            source: hosted
            version: "2.5.6"
        """,
    ),
    _t(
        "clients/quokka/app-flutter/lib/l10n/app_de.arb",
        "h10_text_de",
        False,
        r"""
        {
          "@@locale": "de",
          "passwordLabel": "Passwort",
          "passwordTooShort": "{V}",
          "forgotPassword": "Passwort vergessen?"
        }
        """,
    ),
    _t(
        "clients/quokka/app-flutter/android/app/google-services.json",
        "h10_fbappid",
        False,
        r"""
        {
          "project_info": {
            "project_number": "418273650921",
            "project_id": "quokka-fitness-prod",
            "storage_bucket": "quokka-fitness-prod.appspot.com"
          },
          "client": [
            {
              "client_info": {
                "mobilesdk_app_id": "{V}",
                "android_client_info": {
                  "package_name": "au.com.quokkafitness"
                }
              },
              "oauth_client": []
            }
          ],
          "configuration_version": "1"
        }
        """,
    ),
    _t(
        "clients/quokka/app-flutter/tool/send_test_push.dart",
        "h10_fcm",
        True,
        r"""
        import 'dart:convert';
        import 'package:http/http.dart' as http;

        // Legacy FCM server key (still enabled on the old project)
        const serverKey = '{V}';

        Future<void> main(List<String> args) async {
          final res = await http.post(
            Uri.parse('https://fcm.googleapis.com/fcm/send'),
            headers: {'Authorization': 'key=$serverKey', 'Content-Type': 'application/json'},
            body: jsonEncode({'to': args.first, 'notification': {'title': 'Test', 'body': 'Hi'}}),
          );
          print(res.statusCode);
        }
        """,
    ),
    _t(
        "clients/quokka/ios-native/fastlane/.env.default",
        "h10_pw",
        True,
        r"""
        FASTLANE_USER=mobile@northbeam.studio
        FASTLANE_TEAM_ID=7QK2M9XH4D
        MATCH_GIT_URL=git@github.com:northbeam/certificates.git
        MATCH_PASSWORD={V}
        # FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD is set per machine, see onboarding
        """,
    ),
    _t(
        "clients/quokka/ios-native/fastlane/keys/AuthKey_8R2KJ4Q7LM.p8",
        "h10_p8",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "clients/quokka/ios-native/fastlane/Fastfile",
        "h10_ref_fastlane",
        False,
        r"""
        default_platform(:ios)

        platform :ios do
          lane :beta do
            app_store_connect_api_key(
              key_id: "8R2KJ4Q7LM",
              issuer_id: "69a6de7e-3c1a-47e3-e053-5b8c7c11a4d1",
              key_content: ENV["ASC_KEY_CONTENT"],
            )
            match(type: "appstore", readonly: true, git_basic_authorization: {V})
            build_app(scheme: "Quokka")
            upload_to_testflight
          end
        end
        """,
    ),
    _t(
        "clients/quokka/ios-native/Quokka/ExportOptions.plist",
        "h10_teamid",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
            <key>method</key>
            <string>app-store</string>
            <key>teamID</key>
            <string>{V}</string>
            <key>uploadSymbols</key>
            <true/>
        </dict>
        </plist>
        """,
    ),
    _t(
        "clients/quokka/android-native/app/src/main/res/values-nl/strings.xml",
        "h10_text_nl",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <string name="hint_password">Wachtwoord</string>
            <string name="error_password">{V}</string>
            <string name="action_sign_in">Inloggen</string>
        </resources>
        """,
    ),
    _t(
        "clients/quokka/android-native/docs/signing.md",
        "h10_sha1fp",
        False,
        r"""
        # App signing

        Register these fingerprints in the Firebase console and in Google Sign-In:

        | Key | SHA-1 |
        |-----|-------|
        | upload key | `{V}` |
        | Play app signing key | `{V2}` |

        The upload keystore lives in the team 1Password vault "Quokka Mobile".
        """,
    ),
    # ================================================================ Data & ML (Rivelle Pharma)
    _t(
        "clients/rivelle/notebooks/exploration/llm_label_adverse_events.ipynb",
        "h10_openai",
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
            "import openai\n",
            "import pandas as pd\n",
            "\n",
            "client = openai.OpenAI(api_key=\"{V}\")\n",
            "df = pd.read_parquet(\"s3://rivelle-lake/curated/ae_reports.parquet\")"
           ]
          }
         ],
         "metadata": {
          "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
         },
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "clients/rivelle/notebooks/exploration/finetune_ner.ipynb",
        "h10_hf",
        True,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [
            {
             "name": "stdout",
             "output_type": "stream",
             "text": [
              "Token is valid (permission: write).\n",
              "Login successful\n"
             ]
            }
           ],
           "source": [
            "from huggingface_hub import login\n",
            "login(token=\"{V}\")"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "clients/rivelle/notebooks/exploration/snowflake_pull.ipynb",
        "h10_ref_nb",
        False,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 2,
           "metadata": {},
           "outputs": [],
           "source": [
            "import os, getpass\n",
            "import snowflake.connector\n",
            "conn = snowflake.connector.connect(\n",
            "    account=\"rivelle-eu1\",\n",
            "    user=\"ANALYST_JM\",\n",
            "    password={V},\n",
            "    warehouse=\"ANALYTICS_XS\",\n",
            ")"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "clients/rivelle/notebooks/reports/cohort_retention.ipynb",
        "h10_uuid",
        False,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 7,
           "id": "{V}",
           "metadata": {},
           "outputs": [
            {
             "data": {"text/plain": ["run_id='{V2}'"]},
             "execution_count": 7,
             "metadata": {},
             "output_type": "execute_result"
            }
           ],
           "source": ["run = mlflow.active_run()\n", "f\"run_id={run.info.run_id!r}\""]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "clients/rivelle/airflow/airflow.cfg",
        "h10_fernet",
        True,
        r"""
        [core]
        dags_folder = /opt/airflow/dags
        executor = CeleryExecutor
        fernet_key = {V}
        load_examples = False

        [webserver]
        base_url = https://airflow.rivelle-data.internal
        secret_key = {V2}
        """,
    ),
    _t(
        "clients/rivelle/airflow/airflow.prod.cfg",
        "h10_ph",
        False,
        r"""
        [core]
        executor = KubernetesExecutor
        # fernet key is injected via AIRFLOW__CORE__FERNET_KEY_CMD
        fernet_key = {V}

        [database]
        sql_alchemy_conn_cmd = cat /var/run/secrets/airflow/sql_alchemy_conn

        [secrets]
        backend = airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend
        """,
    ),
    _t(
        "clients/rivelle/airflow/docker-compose.yaml",
        "h10_weak",
        True,
        r"""
        x-airflow-common:
          &airflow-common
          image: apache/airflow:2.9.2
          environment:
            &airflow-common-env
            AIRFLOW__CORE__EXECUTOR: CeleryExecutor
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN: postgresql+psycopg2://airflow:{V}@postgres/airflow
            AIRFLOW__CELERY__BROKER_URL: redis://:@redis:6379/0

        services:
          postgres:
            image: postgres:13
            environment:
              POSTGRES_USER: airflow
              POSTGRES_PASSWORD: {V}
              POSTGRES_DB: airflow
          airflow-init:
            <<: *airflow-common
            environment:
              <<: *airflow-common-env
              _AIRFLOW_WWW_USER_USERNAME: admin
              _AIRFLOW_WWW_USER_PASSWORD: {V2}
        """,
    ),
    _t(
        "clients/rivelle/airflow/dags/export_to_partner_sftp.py",
        "h10_pw",
        True,
        r"""
        from datetime import datetime

        from airflow import DAG
        from airflow.providers.sftp.operators.sftp import SFTPOperator
        from airflow.providers.ssh.hooks.ssh import SSHHook

        # partner asked for a password login; key auth is "on the roadmap"
        hook = SSHHook(
            remote_host="sftp.clinidata-partner.eu",
            username="rivelle_drop",
            password="{V}",
        )

        with DAG("export_to_partner_sftp", start_date=datetime(2024, 1, 1), schedule="@daily") as dag:
            SFTPOperator(
                task_id="push_extract",
                ssh_hook=hook,
                local_filepath="/tmp/extract_{{ ds }}.csv",
                remote_filepath="/inbound/extract_{{ ds }}.csv",
            )
        """,
    ),
    _t(
        "clients/rivelle/airflow/dags/refresh_marts.py",
        "h10_ref_airflow",
        False,
        r"""
        from airflow.decorators import dag, task
        from airflow.hooks.base import BaseHook
        from airflow.models import Variable


        @dag(schedule="0 5 * * *", catchup=False)
        def refresh_marts():
            @task
            def notify(status: str) -> None:
                conn = BaseHook.get_connection("snowflake_default")
                webhook = {V}
                post_to_slack(webhook, f"marts refreshed: {status} ({conn.login})")

            notify("ok")


        refresh_marts()
        """,
    ),
    _t(
        "clients/rivelle/airflow/variables/prod.json",
        "h10_slackhook",
        True,
        r"""
        {
          "slack_webhook_url": "{V}",
          "marts_schema": "MARTS",
          "alert_channel": "#data-alerts",
          "partner_export_enabled": "true"
        }
        """,
    ),
    _t(
        "clients/rivelle/airflow/connections/export.yaml",
        "h10_redacted",
        False,
        r"""
        # airflow connections export --file-format yaml (passwords masked by the CLI)
        snowflake_default:
          conn_type: snowflake
          login: AIRFLOW_SVC
          password: '{V}'
          extra: '{"account": "rivelle-eu1", "warehouse": "ETL_M", "role": "TRANSFORMER"}'
        s3_lake:
          conn_type: aws
          login: null
          password: '{V2}'
        """,
    ),
    _t(
        "clients/rivelle/dbt/profiles.yml",
        "h10_pw",
        True,
        r"""
        rivelle:
          target: dev
          outputs:
            dev:
              type: snowflake
              account: rivelle-eu1
              user: DBT_JMORALES
              password: "{V}"
              role: TRANSFORMER_DEV
              database: ANALYTICS_DEV
              warehouse: TRANSFORMING_XS
              schema: dbt_jmorales
              threads: 8
        """,
    ),
    _t(
        "clients/rivelle/dbt/ci/profiles.yml",
        "h10_empty",
        False,
        r"""
        rivelle:
          target: ci
          outputs:
            ci:
              type: snowflake
              account: rivelle-eu1
              user: "{{ env_var('DBT_USER') }}"
              password: "{{ env_var('DBT_PASSWORD', {V}) }}"
              role: TRANSFORMER_CI
              database: ANALYTICS_CI
              warehouse: TRANSFORMING_XS
              schema: "ci_{{ env_var('GITHUB_RUN_ID') }}"
        """,
    ),
    _t(
        "clients/rivelle/dbt/package-lock.yml",
        "h10_sha1",
        False,
        r"""
        packages:
          - package: dbt-labs/dbt_utils
            version: 1.2.0
          - package: calogica/dbt_expectations
            version: 0.10.3
        sha1_hash: {V}
        """,
    ),
    _t(
        "clients/rivelle/bigquery/service-account.json",
        "h10_gcpkey",
        True,
        r"""
        {
          "type": "service_account",
          "project_id": "rivelle-analytics",
          "private_key_id": "5b7e0c2d91f4a8e63c1d0b9a7f2e4c6d8a0b1c3e",
          "private_key": "{V}",
          "client_email": "dbt-runner@rivelle-analytics.iam.gserviceaccount.com",
          "client_id": "104729384756102938475",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "clients/rivelle/spark/conf/spark-defaults.conf",
        "h10_aws_spark",
        True,
        r"""
        spark.master                     k8s://https://k8s.rivelle-data.internal:6443
        spark.executor.instances         6
        spark.hadoop.fs.s3a.endpoint     s3.eu-west-1.amazonaws.com
        {V}
        spark.sql.shuffle.partitions     200
        """,
    ),
    _t(
        "clients/rivelle/spark/jobs/ingest_lab_results.py",
        "h10_ref_spark",
        False,
        r"""
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("ingest_lab_results").getOrCreate()

        jdbc_password = {V}
        df = (
            spark.read.format("jdbc")
            .option("url", "jdbc:sqlserver://lims.rivelle.internal:1433;databaseName=LIMS")
            .option("user", "spark_reader")
            .option("password", jdbc_password)
            .option("dbtable", "dbo.results")
            .load()
        )
        df.write.mode("overwrite").parquet("s3a://rivelle-lake/raw/lims/results/")
        """,
    ),
    _t(
        "clients/rivelle/spark/.databrickscfg",
        "h10_databricks",
        True,
        r"""
        [DEFAULT]
        host  = https://adb-4829173650192837.17.azuredatabricks.net
        token = {V}

        [staging]
        host  = https://adb-7712093847561029.9.azuredatabricks.net
        token = {V2}
        """,
    ),
    _t(
        "clients/rivelle/spark/databricks.yml",
        "h10_uuid",
        False,
        r"""
        bundle:
          name: rivelle-pipelines

        targets:
          prod:
            workspace:
              host: https://adb-4829173650192837.17.azuredatabricks.net
            run_as:
              service_principal_name: "{V}"
        resources:
          jobs:
            nightly_ingest:
              name: nightly_ingest
              webhook_notifications:
                on_failure:
                  - id: "{V2}"
              tasks:
                - task_key: ingest
                  existing_cluster_id: "0611-093215-x7k2pq9r"
        """,
    ),
    _t(
        "clients/rivelle/mlops/models/README.md",
        "h10_sha256",
        False,
        r"""
        # Registered models

        | Model | Version | Artifact sha256 |
        |-------|---------|-----------------|
        | ae-classifier | 14 | `{V}` |
        | lab-outlier | 3 | `{V2}` |

        Promote with `mlflow models transition --stage Production`.
        """,
    ),
    # ================================================================ Terraform
    _t(
        "clients/copperleaf/infra/envs/prod/terraform.tfvars",
        "h10_pw",
        True,
        r"""
        environment      = "prod"
        region           = "eu-central-1"
        db_instance_type = "db.t4g.medium"
        db_username      = "copperleaf"
        db_password      = "{V}"
        domain_name      = "copperleafcoffee.com"
        """,
    ),
    _t(
        "clients/copperleaf/infra/modules/rds/variables.tf",
        "h10_tfempty",
        False,
        r"""
        variable "db_username" {
          type        = string
          description = "Master user name"
        }

        variable "db_password" {
          type        = string
          description = "Master password; pass with TF_VAR_db_password"
          sensitive   = true
          default     = {V}
        }
        """,
    ),
    _t(
        "clients/harrowgate/infra/providers.tf",
        "h10_awstf",
        True,
        r"""
        terraform {
          required_providers {
            aws = {
              source  = "hashicorp/aws"
              version = "~> 5.0"
            }
          }
        }

        provider "aws" {
          region     = "eu-west-2"
          {IV}
        }
        """,
    ),
    _t(
        "clients/harrowgate/infra/.terraform.lock.hcl",
        "h10_tflock",
        False,
        r"""
        # This file is maintained automatically by "terraform init".
        # Manual edits may be lost in future updates.

        provider "registry.terraform.io/hashicorp/aws" {
          version     = "5.54.1"
          constraints = "~> 5.0"
          hashes = [
            "{V}",
            "{V2}",
            "{V3}",
          ]
        }
        """,
    ),
    _t(
        "clients/copperleaf/infra/modules/rds/main.tf",
        "h10_ref_tf",
        False,
        r"""
        resource "random_password" "db" {
          length           = 32
          special          = true
          override_special = "!#*-_=+"
        }

        resource "aws_db_instance" "main" {
          identifier          = "copperleaf-${var.environment}"
          engine              = "postgres"
          engine_version      = "16.3"
          instance_class      = var.db_instance_type
          username            = var.db_username
          password            = {V}
          skip_final_snapshot = false
        }
        """,
    ),
    _t(
        "clients/ostrava/infra/.terraform.d/credentials.tfrc.json",
        "h10_tfc",
        True,
        r"""
        {
          "credentials": {
            "app.terraform.io": {
              "token": "{V}"
            }
          }
        }
        """,
    ),
    _t(
        "clients/baumann/infra/main.tf",
        "h10_cert",
        False,
        r"""
        resource "azurerm_app_service_certificate" "portal" {
          name                = "portal-baumann-elektro-de"
          resource_group_name = azurerm_resource_group.portal.name
          location            = azurerm_resource_group.portal.location
          key_vault_secret_id = azurerm_key_vault_certificate.portal.secret_id
        }

        locals {
          # public chain, pinned for the legacy Windows clients
          intermediate_ca = <<-EOT
            {IV}
          EOT
        }
        """,
    ),
    # ================================================================ Pulumi / CloudFormation
    _t(
        "clients/kanpai/infra/Pulumi.prod.yaml",
        "h10_pulsecure",
        False,
        r"""
        secretsprovider: awskms://alias/kanpai-pulumi?region=ap-northeast-1
        config:
          aws:region: ap-northeast-1
          kanpai-infra:dbPassword:
            secure: {V}
          kanpai-infra:stripeSecretKey:
            secure: {V2}
        """,
    ),
    _t(
        "clients/kanpai/infra/Pulumi.dev.yaml",
        "h10_pw",
        True,
        r"""
        config:
          aws:region: ap-northeast-1
          kanpai-infra:dbUsername: kanpai
          kanpai-infra:dbPassword: {V}
          kanpai-infra:instanceType: t3.small
        """,
    ),
    _t(
        "clients/fjordline/infra/cloudformation/database.yaml",
        "h10_cfn_ref",
        False,
        r"""
        AWSTemplateFormatVersion: "2010-09-09"
        Description: Fjordline booking database
        Parameters:
          DBUser:
            Type: String
            Default: booking_admin
        Resources:
          BookingDB:
            Type: AWS::RDS::DBInstance
            Properties:
              Engine: postgres
              DBInstanceClass: db.t3.medium
              AllocatedStorage: "100"
              MasterUsername: !Ref DBUser
              MasterUserPassword: {V}
        """,
    ),
    _t(
        "clients/fjordline/infra/cloudformation/params/staging.json",
        "h10_pw",
        True,
        r"""
        [
          { "ParameterKey": "Environment", "ParameterValue": "staging" },
          { "ParameterKey": "DBUser", "ParameterValue": "booking_admin" },
          { "ParameterKey": "DBPassword", "ParameterValue": "{V}" },
          { "ParameterKey": "VpcId", "ParameterValue": "vpc-0a7c3e91d2f4b5a68" }
        ]
        """,
    ),
    # ================================================================ Helm / Kustomize / Kubernetes
    _t(
        "clients/harrowgate/deploy/helm/vetbook/values-staging.yaml",
        "h10_pw",
        True,
        r"""
        image:
          repository: ghcr.io/northbeam/vetbook
          tag: "2024.06.2"

        postgresql:
          enabled: true
          auth:
            username: vetbook
            password: "{V}"
            postgresPassword: "{V2}"
            database: vetbook

        redis:
          enabled: true
          auth:
            enabled: false
        """,
    ),
    _t(
        "clients/harrowgate/deploy/helm/vetbook/values-prod.yaml",
        "h10_secretname",
        False,
        r"""
        postgresql:
          enabled: false

        externalDatabase:
          host: vetbook-prod.cx81kqz0p2ld.eu-west-2.rds.amazonaws.com
          user: vetbook
          existingSecret: {V}
          existingSecretPasswordKey: password

        imagePullSecrets:
          - name: {V2}
        """,
    ),
    _t(
        "clients/harrowgate/deploy/helm/vetbook/templates/secret.yaml",
        "h10_ref_helm",
        False,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ include "vetbook.fullname" . }}-db
        type: Opaque
        data:
          password: {V}
          redis-password: {V2}
        """,
    ),
    _t(
        "clients/fjordline/deploy/helm/values-prod.enc.yaml",
        "h10_sops",
        False,
        r"""
        booking:
            datasource:
                password: {V}
            rabbitmq:
                password: {V2}
        sops:
            kms:
                - arn: arn:aws:kms:eu-north-1:392817465019:key/8a1f3c2e-6b4d-4e0a-9c7f-2d5e8b1a3f60
                  created_at: "2024-05-14T09:12:44Z"
            lastmodified: "2024-05-14T09:12:45Z"
            version: 3.8.1
        """,
    ),
    _t(
        "clients/ostrava/deploy/overlays/staging/kustomization.yaml",
        "h10_pw",
        True,
        r"""
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        namespace: departures-staging
        resources:
          - ../../base
        secretGenerator:
          - name: departures-db
            literals:
              - username=departures
              - password={V}
        images:
          - name: departures
            newTag: 1.14.0
        """,
    ),
    _t(
        "clients/ostrava/deploy/overlays/prod/sealed-db.yaml",
        "h10_sealed",
        False,
        r"""
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: departures-db
          namespace: departures
        spec:
          encryptedData:
            password: {V}
          template:
            metadata:
              name: departures-db
        """,
    ),
    _t(
        "clients/kanpai/k8s/secret-redis.yaml",
        "h10_b64pw",
        True,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: redis-auth
          namespace: kanpai
        type: Opaque
        data:
          redis-password: {V}
        """,
    ),
    _t(
        "clients/kanpai/k8s/deployment.yaml",
        "h10_digest",
        False,
        r"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: order-api
        spec:
          template:
            spec:
              containers:
                - name: api
                  image: ghcr.io/northbeam/kanpai-order-api@{V}
                  envFrom:
                    - secretRef:
                        name: order-api-env
                - name: otel
                  image: otel/opentelemetry-collector-contrib@{V2}
        """,
    ),
    # ================================================================ Ansible / Packer
    _t(
        "clients/marisol/ansible/group_vars/prod/vault.yml",
        "h10_ansvault",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "clients/marisol/ansible/group_vars/prod/vars.yml",
        "h10_ref_ans",
        False,
        r"""
        mysql_root_password: "{V}"
        reservas_db_password: "{V2}"
        php_version: "8.3"
        nginx_server_name: reservas.marisoltours.es
        """,
    ),
    _t(
        "clients/marisol/ansible/inventory/hosts.ini",
        "h10_pw",
        True,
        r"""
        [web]
        web01.marisoltours.es ansible_host=185.42.113.17

        [db]
        db01.marisoltours.es ansible_host=185.42.113.21

        [all:vars]
        ansible_user=despliegue
        ansible_become=true
        ansible_become_pass={V}
        """,
    ),
    _t(
        "clients/marisol/ansible/roles/mysql/defaults/main.yml",
        "h10_ph",
        False,
        r"""
        ---
        mysql_port: 3306
        mysql_bind_address: 127.0.0.1
        # override in group_vars/*/vault.yml
        mysql_root_password: "{V}"
        mysql_users:
          - name: reservas
            password: "{V2}"
            priv: "reservas.*:ALL"
        """,
    ),
    _t(
        "clients/baumann/images/windows-agent.pkr.hcl",
        "h10_pw",
        True,
        r"""
        source "azure-arm" "agent" {
          os_type                           = "Windows"
          image_publisher                   = "MicrosoftWindowsServer"
          image_offer                       = "WindowsServer"
          image_sku                         = "2022-datacenter-azure-edition"
          communicator                      = "winrm"
          winrm_username                    = "packer"
          winrm_password                    = "{V}"
          winrm_use_ssl                     = true
          winrm_insecure                    = true
          managed_image_name                = "build-agent-{{timestamp}}"
          managed_image_resource_group_name = "rg-baumann-images"
        }
        """,
    ),
    _t(
        "clients/ostrava/images/ubuntu-base.pkr.hcl",
        "h10_sha256",
        False,
        r"""
        source "qemu" "ubuntu" {
          iso_url          = "https://releases.ubuntu.com/24.04/ubuntu-24.04-live-server-amd64.iso"
          iso_checksum     = "sha256:{V}"
          ssh_username     = "ubuntu"
          ssh_private_key_file = "~/.ssh/packer_ed25519"
          disk_size        = "20G"
          format           = "qcow2"
          http_directory   = "http"
        }
        """,
    ),
    _t(
        "clients/ostrava/images/http/user-data",
        "h10_sshpub",
        False,
        r"""
        #cloud-config
        autoinstall:
          version: 1
          identity:
            hostname: ostrava-base
            username: ubuntu
            password: "!"
          ssh:
            install-server: true
            allow-pw: false
            authorized-keys:
              - {V}
        """,
    ),
    # ================================================================ Docker Compose / registries
    _t(
        "clients/baumann/docker-compose.yml",
        "h10_weak",
        True,
        r"""
        services:
          sql:
            image: mcr.microsoft.com/mssql/server:2022-latest
            environment:
              ACCEPT_EULA: "Y"
              MSSQL_SA_PASSWORD: "{V}"
            ports:
              - "1433:1433"
          portal:
            build: .
            environment:
              ConnectionStrings__Default: "Server=sql;Database=Portal;User Id=sa;Password={V};TrustServerCertificate=True"
            depends_on:
              - sql
        """,
    ),
    _t(
        "clients/copperleaf/shop/docker-compose.yml",
        "h10_ref_compose",
        False,
        r"""
        services:
          db:
            image: postgres:16
            environment:
              POSTGRES_USER: copperleaf
              POSTGRES_PASSWORD: {V}
          web:
            build: .
            environment:
              DATABASE_URL: postgres://copperleaf:{V2}@db:5432/copperleaf
              RAILS_MASTER_KEY: ${RAILS_MASTER_KEY}
            depends_on: [db]
        """,
    ),
    _t(
        "clients/kanpai/.docker/config.json",
        "h10_basic",
        True,
        r"""
        {
          "auths": {
            "registry.gitlab.com": {
              "auth": "{V}"
            },
            "https://index.docker.io/v1/": {
              "auth": "{V2}"
            }
          },
          "credsStore": ""
        }
        """,
    ),
    _t(
        "clients/fjordline/.docker/config.json",
        "h10_credstore",
        False,
        r"""
        {
          "auths": {
            "https://index.docker.io/v1/": {},
            "nexus.fjordline.no:8443": {}
          },
          "credsStore": "{V}",
          "currentContext": "default"
        }
        """,
    ),
    # ================================================================ GitHub Actions
    _t(
        "clients/harrowgate/vetbook/.github/workflows/deploy.yml",
        "h10_ref_gha",
        False,
        r"""
        name: deploy
        on:
          push:
            branches: [main]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            environment: production
            steps:
              - uses: actions/checkout@v4
              - uses: docker/login-action@v3
                with:
                  username: northbeamci
                  password: {V}
              - run: ./scripts/deploy.sh
                env:
                  SENTRY_AUTH_TOKEN: {V2}
        """,
    ),
    _t(
        "clients/kanpai/order-api/.github/workflows/release.yml",
        "h10_github",
        True,
        r"""
        name: release
        on:
          workflow_dispatch:
        jobs:
          image:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - name: Login to GHCR
                # GITHUB_TOKEN can't push to the org package, using Ken's PAT for now
                run: echo "{V}" | docker login ghcr.io -u ken-northbeam --password-stdin
              - run: docker build -t ghcr.io/northbeam/kanpai-order-api:${{ github.sha }} .
              - run: docker push ghcr.io/northbeam/kanpai-order-api:${{ github.sha }}
        """,
    ),
    _t(
        "clients/rivelle/dbt/.github/workflows/nightly.yml",
        "h10_awsyaml",
        True,
        r"""
        name: nightly-dbt
        on:
          schedule:
            - cron: "0 4 * * *"
        jobs:
          build:
            runs-on: ubuntu-latest
            env:
              {IV}
              AWS_DEFAULT_REGION: eu-west-1
              DBT_PROFILES_DIR: ./ci
            steps:
              - uses: actions/checkout@v4
              - run: pip install dbt-snowflake==1.8.3
              - run: dbt build --target ci
        """,
    ),
    _t(
        "clients/ostrava/departures/.github/workflows/ci.yml",
        "h10_gitsha",
        False,
        r"""
        name: ci
        on: [push, pull_request]
        permissions:
          contents: read
        jobs:
          test:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@{V} # v4.1.7
              - uses: actions/setup-go@{V2} # v5.0.1
                with:
                  go-version-file: go.mod
              - run: go test ./...
        """,
    ),
    _t(
        "clients/quokka/app-rn/.github/dependabot.yml",
        "h10_ref_gha",
        False,
        r"""
        version: 2
        registries:
          npm-github:
            type: npm-registry
            url: https://npm.pkg.github.com
            token: {V}
        updates:
          - package-ecosystem: npm
            directory: "/"
            registries: [npm-github]
            schedule:
              interval: weekly
        """,
    ),
    # ================================================================ GitLab CI
    _t(
        "clients/marisol/reservas/.gitlab-ci.yml",
        "h10_gitlab",
        True,
        r"""
        stages: [test, deploy]

        test:
          stage: test
          image: php:8.3
          script:
            - composer install --no-progress
            - php artisan test

        notify_release:
          stage: deploy
          script:
            - >
              curl --request POST --header "PRIVATE-TOKEN: {V}"
              "https://gitlab.com/api/v4/projects/48213377/releases"
              --data "tag_name=$CI_COMMIT_TAG&name=$CI_COMMIT_TAG"
          rules:
            - if: $CI_COMMIT_TAG
        """,
    ),
    _t(
        "clients/marisol/landing/.gitlab-ci.yml",
        "h10_ref_gitlab",
        False,
        r"""
        build:
          image: docker:26
          services: [docker:26-dind]
          script:
            - echo "{V}" | docker login $CI_REGISTRY -u $CI_REGISTRY_USER --password-stdin
            - docker build -t $CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA .
            - docker push $CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA
        """,
    ),
    _t(
        "clients/marisol/reservas/.gitlab-ci.services.yml",
        "h10_weak",
        True,
        r"""
        feature_tests:
          stage: test
          services:
            - name: mysql:8.0
              alias: mysql-ci
          variables:
            MYSQL_DATABASE: reservas_test
            MYSQL_ROOT_PASSWORD: "{V}"
            DB_HOST: mysql-ci
            DB_USERNAME: root
            DB_PASSWORD: "{V}"
          script:
            - php artisan migrate --force
            - php artisan test --testsuite=Feature
        """,
    ),
    _t(
        "clients/marisol/reservas/docs/ci-log-deploy-1422.txt",
        "h10_redacted",
        False,
        r"""
        Running with gitlab-runner 17.0.0 (44feccdf)
          on marisol-runner-01 t3_KxZ8y, system ID: s_0e3f9a1c2b7d
        $ echo "Deploying with token $DEPLOY_TOKEN"
        Deploying with token {V}
        $ ssh despliegue@web01.marisoltours.es "cd /var/www/reservas && php artisan migrate --force"
        Migrating: 2024_05_30_101512_add_refund_status_to_bookings
        Job succeeded
        """,
    ),
    # ================================================================ CircleCI
    _t(
        "clients/quokka/app-rn/scripts/trigger-detox.sh",
        "h10_circleci",
        True,
        r"""
        #!/usr/bin/env bash
        # Kick off the nightly Detox pipeline on the release branch.
        set -euo pipefail
        CIRCLE_TOKEN="{V}"
        curl -sS -X POST \
          -H "Circle-Token: ${CIRCLE_TOKEN}" \
          -H "Content-Type: application/json" \
          -d '{"branch":"release","parameters":{"run_detox":true}}' \
          https://circleci.com/api/v2/project/gh/northbeam/quokka-app/pipeline
        """,
    ),
    _t(
        "clients/quokka/app-rn/.circleci/config.yml",
        "h10_ref_circle",
        False,
        r"""
        version: 2.1
        orbs:
          node: circleci/node@5.2.0
        jobs:
          test:
            executor: node/default
            steps:
              - checkout
              - run: echo "//registry.npmjs.org/:_authToken={V}" > ~/.npmrc
              - node/install-packages
              - run: npm test -- --ci
        workflows:
          main:
            jobs:
              - test:
                  context: quokka-npm
        """,
    ),
    # ================================================================ Jenkins
    _t(
        "clients/fjordline/booking-service/Jenkinsfile",
        "h10_uuid",
        False,
        r"""
        pipeline {
          agent { label 'docker' }
          stages {
            stage('Publish') {
              steps {
                withCredentials([usernamePassword(credentialsId: '{V}',
                                                  usernameVariable: 'NEXUS_USER',
                                                  passwordVariable: 'NEXUS_PASSWORD')]) {
                  sh 'mvn -s .mvn/settings.xml deploy -DskipTests'
                }
              }
            }
            stage('Deploy') {
              steps {
                sshagent(credentials: ['{V2}']) {
                  sh 'ssh deploy@app01.fjordline.no ./deploy.sh'
                }
              }
            }
          }
        }
        """,
    ),
    _t(
        "clients/fjordline/tracking-service/Jenkinsfile",
        "h10_jenkins",
        True,
        r"""
        pipeline {
          agent any
          stages {
            stage('Trigger downstream') {
              steps {
                sh '''
                  curl -X POST -u ci-trigger:{V} \
                    "https://jenkins.fjordline.no/job/tracking-e2e/buildWithParameters?BRANCH=${BRANCH_NAME}"
                '''
              }
            }
          }
        }
        """,
    ),
    _t(
        "clients/fjordline/jenkins/credentials.xml",
        "h10_jenkins_enc",
        False,
        r"""
        <?xml version='1.1' encoding='UTF-8'?>
        <com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1337.v60b_d7b_c7b_c9f">
          <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
            <entry>
              <java.util.concurrent.CopyOnWriteArrayList>
                <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                  <scope>GLOBAL</scope>
                  <id>nexus-deployer</id>
                  <username>ci-deployer</username>
                  <password>{V}</password>
                </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
              </java.util.concurrent.CopyOnWriteArrayList>
            </entry>
          </domainCredentialsMap>
        </com.cloudbees.plugins.credentials.SystemCredentialsProvider>
        """,
    ),
    _t(
        "clients/fjordline/jenkins/casc/jenkins.yaml",
        "h10_ref_casc",
        False,
        r"""
        jenkins:
          systemMessage: "Fjordline CI - managed by JCasC"
          securityRealm:
            local:
              allowsSignup: false
              users:
                - id: admin
                  password: "{V}"
        credentials:
          system:
            domainCredentials:
              - credentials:
                  - string:
                      id: sonar-token
                      secret: "{V2}"
        """,
    ),
    # ================================================================ Azure Pipelines / Buildkite
    _t(
        "clients/baumann/azure-pipelines.yml",
        "h10_ref_ado",
        False,
        r"""
        trigger:
          branches:
            include: [main]
        pool:
          vmImage: windows-latest
        variables:
          - group: baumann-portal-prod
        steps:
          - task: DotNetCoreCLI@2
            inputs:
              command: publish
              projects: Baumann.Portal/Baumann.Portal.csproj
          - powershell: |
              sqlpackage /Action:Publish /SourceFile:db.dacpac /TargetServerName:baumann-sql.database.windows.net /TargetUser:portal_admin /TargetPassword:{V}
            displayName: Deploy database
        """,
    ),
    _t(
        "clients/baumann/pipelines/infra.yml",
        "h10_azsecret",
        True,
        r"""
        steps:
          - script: |
              az login --service-principal \
                -u 3f7c2a91-5d4e-4b8a-9e1f-0c6d2b7a8e35 \
                -p '{V}' \
                --tenant 9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d
              az account set --subscription "Baumann Produktion"
              terraform -chdir=infra apply -auto-approve
            displayName: Terraform apply (Produktion)
        """,
    ),
    _t(
        "clients/ostrava/departures/.buildkite/hooks/environment",
        "h10_ref_sh",
        False,
        r"""
        #!/bin/bash
        set -euo pipefail

        if [[ "$BUILDKITE_PIPELINE_SLUG" == "departures-deploy" ]]; then
          export PGPASSWORD={V}
          export NATS_TOKEN="$(buildkite-agent secret get nats_token)"
        fi
        """,
    ),
    # ================================================================ Scripts
    _t(
        "clients/harrowgate/vetbook/scripts/backup-db.sh",
        "h10_ref_sh",
        False,
        r"""
        #!/usr/bin/env bash
        # Nightly logical backup of the vetbook database to S3.
        set -euo pipefail

        export PGPASSWORD={V}
        STAMP=$(date +%Y%m%d-%H%M)
        pg_dump -h "$DB_HOST" -U vetbook -Fc vetbook > "/tmp/vetbook-$STAMP.dump"
        aws s3 cp "/tmp/vetbook-$STAMP.dump" "s3://harrowgate-backups/vetbook/$STAMP.dump"
        rm -f "/tmp/vetbook-$STAMP.dump"
        """,
    ),
    _t(
        "clients/marisol/scripts/deploy.sh",
        "h10_pw",
        True,
        r"""
        #!/bin/bash
        # Despliegue manual (cuando GitLab está caído)
        HOST=web01.marisoltours.es
        USER=despliegue

        sshpass -p '{V}' rsync -az --delete ./public/ "$USER@$HOST:/var/www/reservas/public/"
        sshpass -p '{V}' ssh "$USER@$HOST" "cd /var/www/reservas && php artisan config:cache"
        echo "Listo."
        """,
    ),
    _t(
        "clients/baumann/scripts/New-ServiceAccount.ps1",
        "h10_pw",
        True,
        r"""
        # Legt das Dienstkonto für den Portal-AppPool an (einmalig pro Server)
        Import-Module ActiveDirectory

        $password = ConvertTo-SecureString '{V}' -AsPlainText -Force
        New-ADUser -Name 'svc-portal' `
            -SamAccountName 'svc-portal' `
            -AccountPassword $password `
            -PasswordNeverExpires $true `
            -Enabled $true `
            -Path 'OU=Dienstkonten,DC=baumann,DC=local'
        """,
    ),
    _t(
        "clients/baumann/scripts/Restore-PortalDb.ps1",
        "h10_ref_ps",
        False,
        r"""
        param(
            [Parameter(Mandatory)] [string] $BackupFile
        )

        $saPassword = {V}
        Invoke-Sqlcmd -ServerInstance 'sql01.baumann.local' `
            -Username 'sa' -Password $saPassword `
            -Query "RESTORE DATABASE Portal FROM DISK = N'$BackupFile' WITH REPLACE"
        """,
    ),
    _t(
        "clients/copperleaf/scripts/send_weekly_report.py",
        "h10_sendgrid",
        True,
        r"""
        #!/usr/bin/env python3
        # Weekly sales summary for the Copperleaf owners. Runs from cron on the ops box.
        import sendgrid
        from sendgrid.helpers.mail import Mail

        SG_KEY = "{V}"


        def main() -> None:
            message = Mail(
                from_email="reports@copperleafcoffee.com",
                to_emails=["owners@copperleafcoffee.com"],
                subject="Weekly sales",
                html_content=open("/tmp/weekly.html").read(),
            )
            sendgrid.SendGridAPIClient(SG_KEY).send(message)


        if __name__ == "__main__":
            main()
        """,
    ),
    _t(
        "clients/rivelle/scripts/pull_lims_export.py",
        "h10_ref_py",
        False,
        r"""
        import keyring
        import paramiko

        HOST = "lims-export.rivelle.internal"
        USER = "export_reader"


        def fetch(remote: str, local: str) -> None:
            password = {V}
            with paramiko.Transport((HOST, 22)) as t:
                t.connect(username=USER, password=password or keyring.get_password(HOST, USER))
                paramiko.SFTPClient.from_transport(t).get(remote, local)
        """,
    ),
    _t(
        "clients/kanpai/order-api/Makefile",
        "h10_docker_ph",
        False,
        r"""
        IMAGE := ghcr.io/northbeam/kanpai-order-api
        TAG   ?= $(shell git rev-parse --short HEAD)

        login:
        	echo {V} | docker login ghcr.io -u northbeamci --password-stdin

        build:
        	docker build -t $(IMAGE):$(TAG) .

        push: login build
        	docker push $(IMAGE):$(TAG)
        """,
    ),
    _t(
        "clients/harrowgate/vetbook/scripts/gen_password.py",
        "h10_alphabet",
        False,
        r"""
        import secrets

        ALPHABET = "{V}"


        def generate(length: int = 20) -> str:
            # used by the "reset staff password" admin action
            return "".join(secrets.choice(ALPHABET) for _ in range(length))
        """,
    ),
    _t(
        "clients/ostrava/scripts/install-tools.sh",
        "h10_sha256",
        False,
        r"""
        #!/usr/bin/env bash
        set -euo pipefail
        GOLANGCI_VERSION=1.59.1
        GOLANGCI_SHA256={V}

        curl -sSLo /tmp/golangci.tar.gz \
          "https://github.com/golangci/golangci-lint/releases/download/v${GOLANGCI_VERSION}/golangci-lint-${GOLANGCI_VERSION}-linux-amd64.tar.gz"
        echo "${GOLANGCI_SHA256}  /tmp/golangci.tar.gz" | sha256sum -c -
        tar -xzf /tmp/golangci.tar.gz -C /usr/local/bin --strip-components=1
        """,
    ),
    _t(
        "clients/ostrava/scripts/notify-outage.sh",
        "h10_telegram",
        True,
        r"""
        #!/bin/sh
        # Pošle upozornění do skupiny dispečinku (Telegram)
        BOT_TOKEN="{V}"
        CHAT_ID="-1001849302716"
        curl -s "https://api.telegram.org/bot${BOT_TOKEN}/sendMessage" \
          -d chat_id="$CHAT_ID" \
          --data-urlencode text="Výpadek: $1"
        """,
    ),
    # ================================================================ Tests and fixtures
    _t(
        "clients/quokka/web-admin/cypress.env.json",
        "h10_weak",
        True,
        r"""
        {
          "baseUrl": "https://admin.staging.quokkafitness.com.au",
          "adminEmail": "qa+admin@northbeam.studio",
          "adminPassword": "{V}",
          "coachEmail": "qa+coach@northbeam.studio",
          "coachPassword": "{V2}"
        }
        """,
    ),
    _t(
        "clients/kanpai/order-api/postman/staging.postman_environment.json",
        "h10_bearer",
        True,
        r"""
        {
          "id": "4d1f7a2e-9c3b-4e8a-b6d0-2f5a1c7e9b34",
          "name": "Kanpai staging",
          "values": [
            { "key": "baseUrl", "value": "https://api.staging.kanpai-ramen.jp", "enabled": true },
            { "key": "accessToken", "value": "{V}", "type": "secret", "enabled": true }
          ],
          "_postman_variable_scope": "environment"
        }
        """,
    ),
    _t(
        "clients/kanpai/order-api/postman/orders.postman_collection.json",
        "h10_postman_var",
        False,
        r"""
        {
          "info": { "name": "Kanpai orders", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json" },
          "auth": {
            "type": "bearer",
            "bearer": [{ "key": "token", "value": "{V}", "type": "string" }]
          },
          "item": [
            { "name": "List orders", "request": { "method": "GET", "url": "{{baseUrl}}/v1/orders" } }
          ]
        }
        """,
    ),
    _t(
        "clients/quokka/web-admin/.env.test",
        "h10_pw",
        True,
        r"""
        # Playwright against the shared staging tenant
        PLAYWRIGHT_BASE_URL=https://admin.staging.quokkafitness.com.au
        E2E_USER=e2e-runner@northbeam.studio
        E2E_PASSWORD={V}
        """,
    ),
    _t(
        "clients/copperleaf/shop/spec/fixtures/files/legacy_users.sql",
        "h10_bcrypt",
        False,
        r"""
        -- Imported from the old WooCommerce shop, passwords re-hashed with bcrypt
        INSERT INTO users (id, email, encrypted_password, created_at) VALUES
          (101, 'maria@example.com', '{V}', '2019-03-02 10:11:00'),
          (102, 'tom@example.com', '{V2}', '2019-04-17 08:45:00');
        """,
    ),
    _t(
        "clients/ostrava/departures/internal/auth/testdata/users.yaml",
        "h10_argon2",
        False,
        r"""
        users:
          - name: dispatcher
            password_hash: "{V}"
            roles: [dispatch]
          - name: viewer
            password_hash: "{V2}"
            roles: [read]
        """,
    ),
    _t(
        "clients/rivelle/airflow/tests/moto.env",
        "h10_awsexample",
        False,
        r"""
        # Loaded by conftest.py before moto's mock_aws starts; nothing leaves the process.
        # These are the example keys from the AWS documentation.
        {V}
        AWS_DEFAULT_REGION=eu-west-1
        """,
    ),
    # ================================================================ Docs, runbooks, pastes
    _t(
        "clients/copperleaf/shop/README.md",
        "h10_weak",
        True,
        r"""
        # Copperleaf shop

        ## Local setup

        ```bash
        bin/setup
        bin/rails db:seed
        bin/dev
        ```

        Sign in to `/admin` as `ops@copperleafcoffee.com` with password `{V}`.
        The same seed account exists on staging (https://staging.copperleafcoffee.com/admin).
        """,
    ),
    _t(
        "clients/ostrava/departures/README.md",
        "h10_ph",
        False,
        r"""
        # departures

        Realtime departure boards for Ostrava Transit.

        ## Configuration

        | Variable | Example | Notes |
        |----------|---------|-------|
        | `PG_DSN` | `postgres://departures:{V}@localhost:5432/departures` | local only |
        | `NATS_TOKEN` | `{V2}` | ask #ostrava-dev |
        | `FEED_API_KEY` | `{V3}` | portal account |
        """,
    ),
    _t(
        "clients/marisol/docs/runbooks/restaurar-base-de-datos.md",
        "h10_pw",
        True,
        r"""
        # Restaurar la base de datos de reservas

        1. Conectarse al servidor: `ssh despliegue@db01.marisoltours.es`
        2. Parar el worker de colas: `sudo systemctl stop reservas-queue`
        3. Restaurar el volcado:

           ```
           mysql -u root -p'{V}' reservas < /backups/reservas-ultimo.sql
           ```

        4. Volver a arrancar el worker y comprobar `/salud`.

        Contacto de guardia: Lucía (Northbeam) +34 600 000 123
        """,
    ),
    _t(
        "clients/ostrava/docs/runbooks/przywracanie-bazy.md",
        "h10_ref_sh",
        False,
        r"""
        # Przywracanie bazy departures

        Hasło do bazy pobieramy z Vaulta, nigdy nie wklejamy go do dokumentacji:

        ```bash
        export PGPASSWORD={V}
        pg_restore -h db.ostrava-transit.cz -U departures -d departures --clean latest.dump
        ```

        Po przywróceniu uruchom `make migrate` i sprawdź tablice na przystanku testowym.
        """,
    ),
    _t(
        "docs/adr/0007-secrets-management.md",
        "h10_arn",
        False,
        r"""
        # ADR 0007: Client secrets live in the client's cloud secret store

        Status: accepted (2024-02-12)

        ## Decision

        Application secrets are kept in the client's own secret manager and injected at deploy
        time. Repositories only reference them, for example:

        - Copperleaf: `{V}`
        - Kanpai: `{V2}`

        ## Consequences

        Local development uses `.env` files that are git-ignored; `.env.example` holds placeholders.
        """,
    ),
    _t(
        "clients/baumann/docs/onboarding/Zugang-fuer-Entwickler.md",
        "h10_pw",
        True,
        r"""
        # Zugang für neue Entwickler (Baumann Elektro)

        ## VPN

        - Client: FortiClient, Gateway `vpn.baumann-elektro.de:10443`
        - Benutzer: `ext-northbeam`
        - Passwort: `{V}`

        ## Testsystem

        Das Portal-Testsystem ist unter https://portal-test.baumann-elektro.de erreichbar.
        Zugangsdaten für den Test-SQL-Server bitte bei Herrn Krüger anfragen.
        """,
    ),
    _t(
        "clients/kanpai/docs/fr/demarrage.md",
        "h10_docpw",
        False,
        r"""
        # Démarrage rapide

        Exemple de chaîne de connexion (base de démonstration, à adapter) :

            DATABASE_URL=postgresql://demo:{V}@db.example.com:5432/orders

        Dans la documentation, les identifiants `admin` / `{V2}` sur
        https://demo.example.org ne sont que des exemples.
        """,
    ),
    _t(
        "docs/pastes/slack-2024-05-21-quokka-staging.txt",
        "h10_pw",
        True,
        r"""
        [10:42] Dana Whitfield: anyone have the staging admin login for the quokka web admin?
        [10:43] Priya N: admin@quokkafitness.com.au / {V}
        [10:43] Priya N: pls don't share outside the channel, I'll rotate after the demo
        [10:44] Dana Whitfield: thanks! 🙏
        [10:51] Marco: reminder: retro at 3pm
        """,
    ),
    _t(
        "clients/rivelle/docs/emails/2024-03-acesso-sftp-parceiro.eml",
        "h10_pw",
        True,
        r"""
        From: Joana Ribeiro <joana.ribeiro@clinidata-partner.eu>
        To: dados@rivelle.com
        Cc: squad-data@northbeam.studio
        Subject: Re: Acesso SFTP para o envio diário
        Date: Thu, 14 Mar 2024 16:02:11 +0000

        Olá equipa,

        Seguem os dados de acesso ao nosso SFTP:

        Servidor: sftp.clinidata-partner.eu (porta 22)
        Utilizador: rivelle_drop
        Senha: {V}

        Os ficheiros devem ser colocados em /inbound.

        Cumprimentos,
        Joana
        """,
    ),
    _t(
        "clients/harrowgate/docs/emails/2024-01-new-smtp-account.eml",
        "h10_redacted",
        False,
        r"""
        From: IT Support <it@harrowgate-vets.co.uk>
        To: sam@northbeam.studio
        Subject: New SMTP account for vetbook

        Hi Sam,

        The new mailbox is appointments@harrowgate-vets.co.uk.
        Password: {V} (sent to you separately by SMS, as agreed)

        Regards,
        Harrowgate IT
        """,
    ),
    _t(
        "clients/copperleaf/shop/CHANGELOG.md",
        "h10_gitsha",
        False,
        r"""
        # Changelog

        ## 3.12.0 (2024-06-03)

        - Subscriptions: pause and resume ({V})
        - Fix double charge on retry of declined cards ({V2})

        ## 3.11.2 (2024-05-20)

        - Rotate Stripe webhook secret; old one revoked ({V3})
        """,
    ),
    _t(
        "clients/quokka/android-native/README.nl.md",
        "h10_sentrydsn",
        False,
        r"""
        # Quokka Android

        ## Foutrapportage

        Crashes gaan naar Sentry. De DSN staat in `app/src/main/AndroidManifest.xml`:

        ```xml
        <meta-data android:name="io.sentry.dsn" android:value="{V}" />
        ```

        De DSN is geen geheim: hij zit in elke APK.
        """,
    ),
    _t(
        "clients/kanpai/docs/引き継ぎ/analytics.md",
        "h10_ga",
        False,
        r"""
        # 引き継ぎ資料: 計測タグ

        | サイト | 測定 ID |
        |--------|---------|
        | 本店サイト | `{V}` |
        | 予約ページ | `{V2}` |

        タグは GTM で管理しています。変更は必ずステージングで確認してください。
        """,
    ),
    _t(
        "clients/ostrava/docs/uk/onboarding.md",
        "h10_text_uk",
        False,
        r"""
        # Онбординг для диспетчерів

        Під час першого входу система попросить змінити пароль.
        Якщо ви бачите повідомлення «{V}», зверніться до служби підтримки.

        Мінімальна довжина пароля: 12 символів.
        """,
    ),
    # ================================================================ Keys, tokens, and their public halves
    _t(
        "clients/harrowgate/deploy/keys/deploy_ed25519",
        "h10_privkey",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "clients/kanpai/deploy/helm/values-tls.yaml",
        "h10_privkey",
        True,
        r"""
        ingress:
          enabled: true
          hosts:
            - api.kanpai-ramen.jp
          tls:
            crt: |
              -----BEGIN CERTIFICATE-----
              (see certs/api.kanpai-ramen.jp.crt)
              -----END CERTIFICATE-----
            key: |
              {IV}
        """,
    ),
    _t(
        "clients/kanpai/order-api/keys/jwt-public.pem",
        "h10_pubpem",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "clients/fjordline/booking-service/src/main/resources/keystore/partner-signing.key",
        "h10_encpem",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "clients/rivelle/infra/.aws/credentials",
        "h10_awsini",
        True,
        r"""
        [default]
        region = eu-west-1

        [rivelle-data]
        {V}
        region = eu-west-1
        """,
    ),
    _t(
        "clients/fjordline/tracking-service/newrelic.yml",
        "h10_nrlicense",
        True,
        r"""
        common: &default_settings
          license_key: '{V}'
          app_name: tracking-service
          log_level: info

        production:
          <<: *default_settings
        """,
    ),
    _t(
        "clients/fjordline/tracking-web/src/main/resources/templates/fragments/newrelic.html",
        "h10_nrjs",
        False,
        r"""
        <script type="text/javascript">
          ;window.NREUM||(NREUM={});NREUM.init={distributed_tracing:{enabled:true},privacy:{cookies_enabled:true}};
          ;NREUM.loader_config={accountID:"4120398",trustKey:"4120398",agentID:"1120291834",licenseKey:"{V}",applicationID:"1120291834"};
          ;NREUM.info={beacon:"bam.eu01.nr-data.net",errorBeacon:"bam.eu01.nr-data.net",licenseKey:"{V}",applicationID:"1120291834",sa:1};
        </script>
        """,
    ),
    _t(
        "clients/quokka/web-admin/src/datadog.ts",
        "h10_ddpub",
        False,
        r"""
        import { datadogRum } from '@datadog/browser-rum';

        datadogRum.init({
          applicationId: 'b2f3c1d4-7e8a-4c9b-a0d1-5e6f7a8b9c0d',
          clientToken: '{V}',
          site: 'datadoghq.eu',
          service: 'quokka-web-admin',
          env: 'production',
          sessionSampleRate: 20,
        });
        """,
    ),
    _t(
        "clients/ostrava/.envrc",
        "h10_vault",
        True,
        r"""
        # direnv: loaded when you cd into the repo
        export VAULT_ADDR=https://vault.ostrava-transit.cz:8200
        export VAULT_TOKEN={V}
        export KUBECONFIG=$PWD/.kube/staging.yaml
        """,
    ),
    _t(
        "clients/baumann/Baumann.Functions/local.settings.json",
        "h10_azconn",
        True,
        r"""
        {
          "IsEncrypted": false,
          "Values": {
            "AzureWebJobsStorage": "{V}",
            "FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated",
            "InvoiceContainer": "rechnungen"
          }
        }
        """,
    ),
    _t(
        "clients/fjordline/scripts/geocode_terminals.py",
        "h10_gkey",
        True,
        r"""
        import csv

        import requests

        API_KEY = "{V}"

        with open("terminals.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                r = requests.get(
                    "https://maps.googleapis.com/maps/api/geocode/json",
                    params={"address": row["address"], "key": API_KEY},
                    timeout=10,
                )
                print(row["name"], r.json()["results"][0]["geometry"]["location"])
        """,
    ),
    _t(
        "clients/rivelle/scripts/alert_failed_loads.py",
        "h10_slackbot",
        True,
        r"""
        from slack_sdk import WebClient

        client = WebClient(token="{V}")


        def alert(table: str, error: str) -> None:
            client.chat_postMessage(
                channel="#data-alerts",
                text=f":red_circle: load of `{table}` failed: {error}",
            )
        """,
    ),
    _t(
        "clients/quokka/scripts/post-release-note.sh",
        "h10_discord",
        True,
        r"""
        #!/usr/bin/env bash
        # Posts the store release notes to the Quokka community Discord
        WEBHOOK_URL="{V}"
        NOTES=$(cat release-notes/latest.md)
        jq -n --arg c "$NOTES" '{content: $c}' | curl -sS -H "Content-Type: application/json" -d @- "$WEBHOOK_URL"
        """,
    ),
    _t(
        "clients/kanpai/order-api/.env.production",
        "h10_vapid_priv",
        True,
        r"""
        NODE_ENV=production
        PUSH_SUBJECT=mailto:dev@kanpai-ramen.jp
        VAPID_PUBLIC_KEY=BPz1rW0x4nH3Vq9dJ2kLmC7sTfY8uE6aR5oG1iN0bX3vZqKcDy4wMhSjAeFtUoLp9gQrB2xNvY7zHcW8kE1sTo
        VAPID_PRIVATE_KEY={V}
        """,
    ),
    _t(
        "clients/kanpai/menu-web/src/push/subscribe.ts",
        "h10_vapid_pub",
        False,
        r"""
        const VAPID_PUBLIC_KEY = '{V}';

        export async function subscribe(reg: ServiceWorkerRegistration) {
          return reg.pushManager.subscribe({
            userVisibleOnly: true,
            applicationServerKey: urlBase64ToUint8Array(VAPID_PUBLIC_KEY),
          });
        }
        """,
    ),
    _t(
        "clients/copperleaf/shop/config/subscription_plans.yml",
        "h10_stripe_id",
        False,
        r"""
        monthly_250g:
          name: "Monthly 250g"
          stripe_price: {V}
        fortnightly_500g:
          name: "Fortnightly 500g"
          stripe_price: {V2}
        """,
    ),
    _t(
        "clients/quokka/app-rn/__tests__/fixtures/avatar.ts",
        "h10_png",
        False,
        r"""
        // 1x1-ish placeholder avatar used by the profile screen snapshot tests
        export const AVATAR_PNG_BASE64 =
          '{V}';
        """,
    ),
    _t(
        "clients/ostrava/departures/docs/github-app.md",
        "h10_ghclient",
        False,
        r"""
        # GitHub App "ostrava-release-bot"

        - App ID: 912384
        - Client ID: `{V}`
        - Installation: northbeam/ostrava-departures

        The private key (.pem) and client secret are in 1Password, vault "Ostrava".
        """,
    ),
]
