"""Sixth held-out part (``heldout6``): written blind, without reading the scanner.

A cross-section of a mid-size company's repositories: backend services in many languages
(Python, Go, Java, Kotlin, C#, TypeScript, Ruby, PHP, Rust, Scala, Elixir), their config
files (YAML, TOML, INI, .properties, .env, XML, JSON, HCL), tests and fixtures, CI pipelines,
Kubernetes/Helm/Kustomize, Terraform/Ansible/Chef/Puppet/Salt, Dockerfiles and Compose files,
migrations and seeds, runbooks, wiki pages, scripts and HTTP cassettes. Look-alikes use the
same shapes. Several values per file (``MULTI_SLOT``); every value of one template has the
template's kind and label.
"""

from __future__ import annotations

import base64
import hashlib
import string
import uuid

import evalset
from evalset import ALNUM, Template

MULTI_SLOT = True

HEX = "0123456789abcdef"
URLSAFE = ALNUM + "-_"


class Heldout6Values(evalset.Values):
    """Value generators of the heldout6 part: its own words and users, ``h6_`` generators."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "axolotl",
            "gazpacho",
            "marzipan",
            "kohlrabi",
            "tuatara",
            "vermouth",
            "okapi",
            "pangolin",
            "sauerkraut",
        ]
        self.users = [
            "ledgerd",
            "shipping",
            "loyalty",
            "crmsync",
            "reconcile",
            "pricing",
            "fraudsvc",
            "catalog",
        ]

    def _pem(self, label: str, lines: int) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * lines)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def _b62_check(self, prefix: str) -> str:
        body = self.s(30)
        crc = int(hashlib.sha1(body.encode()).hexdigest()[:8], 16) % (62**6)
        check = ""
        for _ in range(6):
            crc, rest = divmod(crc, 62)
            check = evalset.B62[rest] + check
        return f"{prefix}_{body}{check}"

    # -- positives ------------------------------------------------------------------
    def h6_word_pass(self) -> str:
        """A weak dictionary-word password, as people put in dev and test configs."""
        return self.pick(self.words) + self.pick(["", "1", "123", "2023", "!", "_local", "99"])

    def h6_strong_pass(self) -> str:
        """A generated password without quote, backslash, hash or space characters."""
        return self.s(self.rng.randrange(14, 24), ALNUM + "!%^*-_+.@")

    def h6_url_pass(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.pick(self.words).capitalize() + self.s(4, string.digits)
        return self.s(self.rng.randrange(14, 22), ALNUM)

    def h6_hex32(self) -> str:
        return self.s(32, HEX)

    def h6_hex40(self) -> str:
        return self.s(40, HEX)

    def h6_hex64(self) -> str:
        return self.s(64, HEX)

    def h6_api_token(self) -> str:
        return self.s(self.rng.choice([32, 36, 40, 48]), ALNUM)

    def h6_b64_32(self) -> str:
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def h6_basic_b64(self) -> str:
        pair = f"{self.pick(self.users)}:{self.h6_url_pass()}"
        return base64.b64encode(pair.encode()).decode()

    def h6_b64_pass(self) -> str:
        return base64.b64encode(self.h6_strong_pass().encode()).decode()

    def h6_rsa_key(self) -> str:
        return self._pem("RSA PRIVATE KEY", self.rng.randrange(10, 16))

    def h6_openssh_key(self) -> str:
        return self._pem("OPENSSH PRIVATE KEY", 7)

    def h6_pkcs8_key(self) -> str:
        return self._pem("PRIVATE KEY", 13)

    def h6_ec_key(self) -> str:
        return self._pem("EC PRIVATE KEY", 3)

    def h6_gcp_escaped_key(self) -> str:
        return self._pem("PRIVATE KEY", 16).replace("\n", "\\n") + "\\n"

    def h6_github_pat(self) -> str:
        return self.github(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def h6_gitlab_pat(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h6_npm_token(self) -> str:
        return self.github("npm")

    def h6_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, string.digits)}-{self.s(13, string.digits)}-{self.s(24)}"

    def h6_slack_webhook(self) -> str:
        up = string.ascii_uppercase + string.digits
        return f"https://hooks.slack.com/services/T{self.s(8, up)}/B{self.s(10, up)}/{self.s(24)}"

    def h6_stripe_live(self) -> str:
        return self.pick(["sk_live_", "rk_live_"]) + self.s(self.rng.choice([24, 34, 99]))

    def h6_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h6_shared_secret(self) -> str:
        """A self-chosen shared secret: a few words and a number."""
        parts = [self.pick(self.words) for _ in range(self.rng.randrange(2, 4))]
        return self.pick(["-", "_", "."]).join(parts) + str(self.rng.randrange(10, 999))

    def h6_db_uri(self) -> str:
        scheme, port = self.pick(
            [
                ("postgresql", 5432),
                ("postgres", 5432),
                ("mysql", 3306),
                ("mongodb", 27017),
                ("amqp", 5672),
                ("redis", 6379),
            ]
        )
        host = self.pick(
            [
                "pg-primary.internal",
                "10.20.3.14",
                "db01.prod.lan",
                "rabbitmq.messaging.svc.cluster.local",
                "cache-2.eu-west-1.compute.internal",
                "mongo-rs0-0.data",
            ]
        )
        user = self.pick(self.users)
        if scheme == "redis":
            return f"redis://:{self.h6_url_pass()}@{host}:{port}/0"
        return f"{scheme}://{user}:{self.h6_url_pass()}@{host}:{port}/{user}"

    def h6_azure_conn(self) -> str:
        key = base64.b64encode(self.rng.randbytes(64)).decode()
        acct = self.pick(self.users) + "store" + self.s(3, string.digits)
        return (
            f"DefaultEndpointsProtocol=https;AccountName={acct};AccountKey={key};"
            "EndpointSuffix=core.windows.net"
        )

    def h6_laravel_key(self) -> str:
        return "base64:" + self.h6_b64_32()

    def h6_rails_skb(self) -> str:
        return self.s(128, HEX)

    def h6_phoenix_skb(self) -> str:
        return self.s(64, ALNUM + "+/")

    def h6_django_key(self) -> str:
        return "django-insecure-" + self.s(
            50, string.ascii_lowercase + string.digits + "!@%^&*(-_=+)"
        )

    def h6_consul_token(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h6_vault_token(self) -> str:
        return "hvs." + self.s(self.rng.choice([24, 91]), URLSAFE)

    def h6_tfc_token(self) -> str:
        return f"{self.s(14)}.atlasv1.{self.s(67)}"

    def h6_nuget_key(self) -> str:
        return "oy2" + self.s(43, string.ascii_lowercase + string.digits)

    def h6_pypi_token(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(self.rng.randrange(60, 90), URLSAFE)

    def h6_openai_key(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h6_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(evalset.json.dumps(obj).encode()).decode().rstrip("=")

        head = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        body = part(
            {
                "sub": self.pick(self.users),
                "scope": "svc",
                "iat": 1710000000 + self.rng.randrange(10**6),
                "exp": 2000000000 + self.rng.randrange(10**6),
            }
        )
        sig = base64.urlsafe_b64encode(self.rng.randbytes(32)).decode().rstrip("=")
        return f"{head}.{body}.{sig}"

    def h6_aws_env_pair(self) -> str:
        kid = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        return f"AWS_ACCESS_KEY_ID={kid}\nAWS_SECRET_ACCESS_KEY={self.s(40, ALNUM + '/+')}"

    def h6_aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    def h6_datadog_key(self) -> str:
        return self.s(32, HEX)

    def h6_pagerduty_key(self) -> str:
        return self.pick(["u+", "y_"]) + self.s(18, ALNUM + "-_")

    def h6_webhook_secret(self) -> str:
        return "whsec_" + self.s(32)

    def h6_hmac_key(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(48)).decode().rstrip("=")

    # -- negatives ------------------------------------------------------------------
    def h6_placeholder(self) -> str:
        return self.pick(
            [
                "<db-password>",
                "${DB_PASS}",
                "{{ .Values.postgres.auth.password }}",
                "changeme",
                "CHANGE_ME",
                "xxxxxxxxxxxxxxxx",
                "<REPLACE_WITH_TOKEN>",
                "$(LEDGER_DB_PASSWORD)",
                "@@API_TOKEN@@",
                "#{ENV['SHIPPING_API_KEY']}",
                "{{ lookup('env', 'PRICING_TOKEN') }}",
                "your_token_here",
                "${SECRET_KEY_BASE:?must be set}",
                "%(smtp_password)s",
                "__PASSWORD__",
                "<%= @db_password %>",
            ]
        )

    def h6_secret_ref(self) -> str:
        return self.pick(
            [
                "vault:secret/data/ledgerd/db#password",
                "{{resolve:secretsmanager:prod/pricing/db:SecretString:password}}",
                "{{resolve:ssm-secure:/prod/shipping/api-key:3}}",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/loyalty-db-Xy12Ab",
                "op://Platform/catalog-postgres/password",
                "@Microsoft.KeyVault(SecretUri=https://kv-crm-prod.vault.azure.net/secrets/DbPw/)",
                "ref+vault://secret/data/fraudsvc#/token",
                "sm://acme-prod/reconcile-db-password",
                "azurekeyvault://kv-prod/secrets/stripe-key",
                "gcp:secretmanager:projects/acme-prod/secrets/smtp/versions/latest",
            ]
        )

    def h6_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h6_git_sha(self) -> str:
        return self.s(40, HEX)

    def h6_uuid_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h6_cert(self) -> str:
        return self._pem("CERTIFICATE", 14)

    def h6_public_pem(self) -> str:
        return self._pem(self.pick(["PUBLIC KEY", "RSA PUBLIC KEY"]), 6)

    def h6_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 " + self.rng.randbytes(32)
        )
        return f"ssh-ed25519 {body.decode()} {self.pick(self.users)}@build-agent"

    def h6_ansible_vault(self) -> str:
        rows = [self.s(80, HEX) for _ in range(self.rng.randrange(5, 9))]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h6_sops_enc(self) -> str:
        data = base64.b64encode(self.rng.randbytes(self.rng.randrange(12, 30))).decode()
        iv = base64.b64encode(self.rng.randbytes(32)).decode()
        tag = base64.b64encode(self.rng.randbytes(16)).decode()
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h6_eyaml(self) -> str:
        return "ENC[PKCS7," + base64.b64encode(self.rng.randbytes(190)).decode() + "]"

    def h6_sealed(self) -> str:
        return "AgB" + base64.b64encode(self.rng.randbytes(300)).decode()

    def h6_pw_hash(self) -> str:
        kind = self.rng.randrange(4)
        if kind == 0:
            return "$2a$10$" + self.s(53, ALNUM + "./")
        if kind == 1:
            salt = base64.b64encode(self.rng.randbytes(16)).decode().rstrip("=")
            digest = base64.b64encode(self.rng.randbytes(32)).decode().rstrip("=")
            return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${digest}"
        if kind == 2:
            digest = base64.b64encode(self.rng.randbytes(32)).decode()
            return f"pbkdf2_sha256$600000${self.s(22)}${digest}"
        return "$6$" + self.s(16, ALNUM + "./") + "$" + self.s(86, ALNUM + "./")

    def h6_example_uri(self) -> str:
        scheme = self.pick(["postgres", "mysql", "amqp", "mongodb+srv"])
        host = self.pick(["db.example.com", "mq.example.org", "cluster0.example.net", "db.test"])
        return f"{scheme}://{self.pick(self.users)}:{self.h6_url_pass()}@{host}/app"

    def h6_aws_doc(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "AKIAI44QH8DHBEXAMPLE",
                "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def h6_i18n(self) -> str:
        return self.pick(
            [
                "Kata sandi salah",
                "Salasana on liian lyhyt",
                "Heslo je příliš krátké",
                "Helytelen jelszó",
                "Parola este incorectă",
                "Nenosiri si sahihi",
                "A palavra-passe expirou",
                "Adgangskoden er forkert",
                "La contrasenya és massa curta",
                "Your password must contain at least one digit",
            ]
        )

    def h6_error_code(self) -> str:
        return self.pick(
            [
                "PASSWORD_EXPIRED",
                "ERR_INVALID_TOKEN",
                "AUTH_4011",
                "token_revoked",
                "E_SECRET_MISSING",
                "credentials_rejected",
            ]
        )

    def h6_stripe_pub(self) -> str:
        return "pk_live_" + self.s(self.rng.choice([24, 99]))

    def h6_redacted(self) -> str:
        return self.pick(
            [
                "<GITHUB_TOKEN>",
                "[FILTERED]",
                "<REDACTED>",
                "***",
                "<STRIPE_SECRET>",
                "FILTERED_AUTH",
                "Bearer <TOKEN>",
            ]
        )

    def h6_tf_hash(self) -> str:
        if self.rng.randrange(2):
            return "h1:" + base64.b64encode(self.rng.randbytes(32)).decode()
        return "zh:" + self.s(64, HEX)

    def h6_b64_64(self) -> str:
        return base64.b64encode(self.rng.randbytes(64)).decode()

    def h6_rails_enc(self) -> str:
        data = base64.b64encode(self.rng.randbytes(self.rng.randrange(120, 400))).decode()
        iv = base64.b64encode(self.rng.randbytes(12)).decode()
        tag = base64.b64encode(self.rng.randbytes(16)).decode()
        return f"{data}--{iv}--{tag}"

    def h6_aws_doc_ini(self) -> str:
        return self.pick(
            [
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n"
                "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def h6_account_id(self) -> str:
        return self.s(12, string.digits)

    def h6_google_client_id(self) -> str:
        tail = self.s(32, string.ascii_lowercase + string.digits)
        return f"{self.s(12, string.digits)}-{tail}.apps.googleusercontent.com"

    def h6_go_sum(self) -> str:
        return "h1:" + base64.b64encode(self.rng.randbytes(32)).decode()

    def h6_empty(self) -> str:
        return ""

    def h6_docker_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def h6_fake_test(self) -> str:
        return self.pick(
            [
                "not-a-real-secret",
                "fake-token-for-tests",
                "dummy",
                "test-only-not-used",
                "FAKE_API_KEY",
                "sk_test_fake",
                "invalid-token",
            ]
        )

    def h6_secret_name(self) -> str:
        return self.pick(
            [
                "ledgerd-db-credentials",
                "pricing-api-token",
                "DB_PASSWORD",
                "shipping/stripe-secret-key",
                "SMTP_PASSWORD_FILE",
                "loyalty-redis-auth",
            ]
        )

    def h6_pgp_message(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 6)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP MESSAGE-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP MESSAGE-----"
        )


VALUES = Heldout6Values

TEMPLATES: list[Template] = [
    # ======================= positives: services and app config =======================
    (
        "services/ledgerd/config/settings/local.py",
        r"""from .base import *  # noqa: F403

DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "ledgerd.local"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "ledgerd",
        "USER": "ledgerd",
        "PASSWORD": "{V}",
        "HOST": "localhost",
        "PORT": 5432,
    }
}

CELERY_BROKER_URL = "redis://localhost:6379/3"
""",
        "h6_word_pass",
        True,
    ),
    (
        "services/ledgerd/config/settings/staging.py",
        r"""import os

from .base import *  # noqa: F403

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "{V}")
SESSION_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = ["https://ledger.staging.acme-corp.io"]
""",
        "h6_django_key",
        True,
    ),
    (
        "services/pricing/internal/config/defaults.go",
        r"""package config

import "time"

// Defaults used when the env file is missing. TODO(pricing): move to vault before GA.
var Defaults = Config{
	HTTPAddr:        ":8080",
	ReadTimeout:     5 * time.Second,
	DatabaseURL:     "{V}",
	CacheTTL:        10 * time.Minute,
	EnableProfiling: false,
}
""",
        "h6_db_uri",
        True,
    ),
    (
        "services/pricing/internal/fx/client.go",
        r"""package fx

import (
	"net/http"
	"time"
)

const (
	baseURL = "https://api.fxratesdirect.com/v2"
	apiKey  = "{V}"
)

func NewClient() *Client {
	return &Client{http: &http.Client{Timeout: 4 * time.Second}, key: apiKey, base: baseURL}
}
""",
        "h6_api_token",
        True,
    ),
    (
        "services/shipping/src/main/resources/application-dev.properties",
        r"""spring.application.name=shipping
server.port=8081
spring.datasource.url=jdbc:postgresql://localhost:5432/shipping
spring.datasource.username=shipping
spring.datasource.password={V}
spring.jpa.hibernate.ddl-auto=validate
spring.rabbitmq.host=localhost
spring.rabbitmq.username=shipping
spring.rabbitmq.password={V2}
management.endpoints.web.exposure.include=health,info,prometheus
""",
        "h6_word_pass",
        True,
    ),
    (
        "services/shipping/src/main/resources/application-prod.yml",
        r"""spring:
  datasource:
    url: jdbc:postgresql://pg-primary.internal:5432/shipping?sslmode=require
    username: shipping_rw
    password: '{V}'
  mail:
    host: smtp.sendgrid.net
    port: 587
    username: apikey
    password: {V2}
carrier:
  dhl:
    base-url: https://express.api.dhl.com/mydhlapi
    api-key: {V3}
""",
        "h6_strong_pass",
        True,
    ),
    (
        "services/shipping/src/main/java/com/acme/shipping/carrier/UpsAuthConfig.java",
        r"""package com.acme.shipping.carrier;

import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

@Configuration
public class UpsAuthConfig {

    private static final String CLIENT_ID = "shipping-ups-prod";
    private static final String CLIENT_SECRET = "{V}";

    @Bean
    public UpsOAuthClient upsOAuthClient() {
        return new UpsOAuthClient("https://onlinetools.ups.com/security/v1/oauth/token",
                CLIENT_ID, CLIENT_SECRET);
    }
}
""",
        "h6_api_token",
        True,
    ),
    (
        "services/loyalty/src/main/kotlin/com/acme/loyalty/PointsRepositoryConfig.kt",
        r"""package com.acme.loyalty

import com.zaxxer.hikari.HikariConfig
import com.zaxxer.hikari.HikariDataSource

object PointsRepositoryConfig {
    fun dataSource(): HikariDataSource {
        val cfg = HikariConfig().apply {
            jdbcUrl = "jdbc:mysql://10.20.3.14:3306/loyalty"
            username = "loyalty_app"
            password = "{V}"
            maximumPoolSize = 12
        }
        return HikariDataSource(cfg)
    }
}
""",
        "h6_strong_pass",
        True,
    ),
    (
        "services/loyalty/build.gradle.kts",
        r"""plugins {
    kotlin("jvm") version "1.9.23"
    id("org.springframework.boot") version "3.2.5"
}

repositories {
    mavenCentral()
    maven {
        url = uri("https://acme.jfrog.io/artifactory/libs-release")
        credentials {
            username = "gradle-ci"
            password = "{V}"
        }
    }
}
""",
        "h6_api_token",
        True,
    ),
    (
        "services/crmsync/CrmSync.Api/appsettings.Development.json",
        r"""{
  "Logging": {
    "LogLevel": {
      "Default": "Information",
      "Microsoft.AspNetCore": "Warning"
    }
  },
  "ConnectionStrings": {
    "Crm": "Server=localhost,1433;Database=CrmSync;User Id=sa;Password={V};TrustServerCertificate=True"
  },
  "Salesforce": {
    "ClientId": "3MVG9fe4g9fhX0E5",
    "ClientSecret": "{V2}"
  }
}
""",
        "h6_strong_pass",
        True,
    ),
    (
        "services/crmsync/CrmSync.Worker/Program.cs",
        r"""using Azure.Storage.Blobs;
using CrmSync.Worker;

var builder = Host.CreateApplicationBuilder(args);

// quick hack for the demo, revert before merging
var blobs = new BlobServiceClient("{V}");
builder.Services.AddSingleton(blobs);
builder.Services.AddHostedService<ExportWorker>();

builder.Build().Run();
""",
        "h6_azure_conn",
        True,
    ),
    (
        "services/crmsync/CrmSync.Api/Web.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="CrmLegacy"
         connectionString="Data Source=sql-crm-01;Initial Catalog=CRM;User ID=crm_app;Password={V}"
         providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="ExportPath" value="D:\exports" />
  </appSettings>
</configuration>
""",
        "h6_word_pass",
        True,
    ),
    (
        "services/storefront-bff/src/config/index.ts",
        r"""import { z } from "zod";

const schema = z.object({
  port: z.number().default(3000),
  catalogUrl: z.string().url(),
  algoliaAdminKey: z.string(),
});

export const config = schema.parse({
  port: Number(process.env.PORT ?? 3000),
  catalogUrl: process.env.CATALOG_URL ?? "http://catalog:8080",
  algoliaAdminKey: process.env.ALGOLIA_ADMIN_KEY ?? "{V}",
});
""",
        "h6_hex32",
        True,
    ),
    (
        "services/storefront-bff/src/payments/stripe.ts",
        r"""import Stripe from "stripe";

export const stripe = new Stripe("{V}", {
  apiVersion: "2024-04-10",
  maxNetworkRetries: 2,
});
""",
        "h6_stripe_live",
        True,
    ),
    (
        "services/storefront-bff/.env.development",
        r"""PORT=3000
NODE_ENV=development
CATALOG_URL=http://localhost:8082
SESSION_SECRET={V}
COOKIE_SIGNING_KEY={V2}
""",
        "h6_shared_secret",
        True,
    ),
    (
        "services/storefront-bff/.env.production.local",
        r"""SENDGRID_API_KEY={V}
SENTRY_ENVIRONMENT=production
""",
        "h6_sendgrid",
        True,
    ),
    (
        "services/notifications/app/services/sms_sender.rb",
        r"""# frozen_string_literal: true

class SmsSender
  ACCOUNT_SID = "AC5e2b07d3f1a94c0e8b6d1f2a3c4e5f60"
  AUTH_TOKEN = "{V}"

  def initialize(client: Twilio::REST::Client.new(ACCOUNT_SID, AUTH_TOKEN))
    @client = client
  end

  def deliver(to:, body:)
    @client.messages.create(from: "+15005550006", to: to, body: body)
  end
end
""",
        "h6_hex32",
        True,
    ),
    (
        "services/notifications/config/database.yml",
        r"""default: &default
  adapter: postgresql
  encoding: unicode
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

development:
  <<: *default
  database: notifications_development
  username: notifications
  password: {V}

test:
  <<: *default
  database: notifications_test
""",
        "h6_word_pass",
        True,
    ),
    (
        "services/notifications/config/master.key",
        r"""{V}""",
        "h6_hex32",
        True,
    ),
    (
        "services/notifications/config/secrets.yml",
        r"""development:
  secret_key_base: {V}

test:
  secret_key_base: {V2}
""",
        "h6_rails_skb",
        True,
    ),
    (
        "services/billing-php/.env",
        r"""APP_NAME=Billing
APP_ENV=local
APP_KEY={V}
APP_DEBUG=true
APP_URL=http://billing.test

DB_CONNECTION=mysql
DB_HOST=127.0.0.1
DB_PORT=3306
DB_DATABASE=billing
DB_USERNAME=billing
""",
        "h6_laravel_key",
        True,
    ),
    (
        "services/billing-php/config/services.php",
        r"""<?php

return [
    'mailgun' => [
        'domain' => env('MAILGUN_DOMAIN', 'mg.acme-corp.io'),
        'secret' => env('MAILGUN_SECRET', 'key-{V}'),
        'endpoint' => 'api.eu.mailgun.net',
    ],

    'postmark' => [
        'token' => env('POSTMARK_TOKEN'),
    ],
];
""",
        "h6_hex32",
        True,
    ),
    (
        "services/billing-php/src/Legacy/InvoiceDb.php",
        r"""<?php

namespace Acme\Billing\Legacy;

final class InvoiceDb
{
    public static function connect(): \PDO
    {
        $dsn = 'mysql:host=db01.prod.lan;dbname=invoices;charset=utf8mb4';
        return new \PDO($dsn, 'invoices_rw', '{V}', [
            \PDO::ATTR_ERRMODE => \PDO::ERRMODE_EXCEPTION,
        ]);
    }
}
""",
        "h6_strong_pass",
        True,
    ),
    (
        "services/fraud-engine/config/default.toml",
        r"""[server]
bind = "0.0.0.0:7070"
workers = 8

[postgres]
host = "pg-fraud.internal"
port = 5432
user = "fraudsvc"
password = "{V}"
dbname = "fraud"

[scoring]
model_path = "/models/gbm-v14.onnx"
threshold = 0.82
""",
        "h6_strong_pass",
        True,
    ),
    (
        "services/fraud-engine/src/clients/maxmind.rs",
        r"""use reqwest::Client;

const ACCOUNT_ID: u32 = 402311;
const LICENSE_KEY: &str = "{V}";

pub fn client() -> MinFraudClient {
    MinFraudClient::new(Client::new(), ACCOUNT_ID, LICENSE_KEY)
}
""",
        "h6_api_token",
        True,
    ),
    (
        "services/reconcile/conf/application.conf",
        r"""akka {
  loglevel = "INFO"
}

reconcile {
  db {
    url = "jdbc:postgresql://pg-primary.internal:5432/reconcile"
    user = "reconcile"
    password = "{V}"
    password = ${?RECONCILE_DB_PASSWORD}
  }
  bank-api {
    client-secret = "{V2}"
  }
}
""",
        "h6_strong_pass",
        True,
    ),
    (
        "services/reconcile/src/main/scala/com/acme/reconcile/SftpSource.scala",
        r"""package com.acme.reconcile

import net.schmizz.sshj.SSHClient

object SftpSource {
  private val Host = "sftp.partnerbank.com"
  private val User = "acme_recon"
  private val Pass = "{V}"

  def open(): SSHClient = {
    val ssh = new SSHClient()
    ssh.loadKnownHosts()
    ssh.connect(Host)
    ssh.authPassword(User, Pass)
    ssh
  }
}
""",
        "h6_url_pass",
        True,
    ),
    (
        "services/catalog_ex/config/dev.exs",
        r"""import Config

config :catalog_ex, CatalogEx.Repo,
  username: "catalog",
  password: "{V}",
  hostname: "localhost",
  database: "catalog_ex_dev",
  show_sensitive_data_on_connection_error: true,
  pool_size: 10

config :catalog_ex, CatalogExWeb.Endpoint,
  http: [ip: {127, 0, 0, 1}, port: 4000],
  check_origin: false
""",
        "h6_word_pass",
        True,
    ),
    (
        "services/catalog_ex/config/prod.secret.exs",
        r"""import Config

config :catalog_ex, CatalogExWeb.Endpoint,
  secret_key_base: "{V}"
""",
        "h6_phoenix_skb",
        True,
    ),
    (
        "services/catalog_ex/lib/catalog_ex/search/typesense.ex",
        r"""defmodule CatalogEx.Search.Typesense do
  @moduledoc "Thin client for the Typesense cluster."

  @host "https://ts.search.acme-corp.io"
  @admin_key "{V}"

  def headers, do: [{"X-TYPESENSE-API-KEY", @admin_key}]
end
""",
        "h6_api_token",
        True,
    ),
    (
        "services/search-indexer/indexer/settings.ini",
        r"""[elasticsearch]
hosts = https://es-prod-1.internal:9200,https://es-prod-2.internal:9200
username = elastic
password = {V}
verify_certs = true

[kafka]
bootstrap = kafka-0.kafka:9093
sasl_mechanism = SCRAM-SHA-512
sasl_username = indexer
sasl_password = {V2}
""",
        "h6_url_pass",
        True,
    ),
    (
        "services/search-indexer/indexer/s3_export.py",
        r"""import boto3

# Used by the nightly export job; the IAM user is scoped to the export bucket.
session = boto3.session.Session(
    aws_access_key_id="AKIA2XQ7RPUZGW4HN6TF",
    aws_secret_access_key="{V}",
    region_name="eu-west-1",
)
s3 = session.client("s3")
""",
        "h6_aws_secret",
        True,
    ),
    (
        "services/search-indexer/indexer/celeryconfig.py",
        r"""broker_url = "{V}"
result_backend = "rpc://"
task_acks_late = True
worker_prefetch_multiplier = 1
""",
        "h6_db_uri",
        True,
    ),
]
TEMPLATES += [
    # ======================= positives: infra, CI, k8s =======================
    (
        "deploy/k8s/base/ledgerd-secret.yaml",
        r"""apiVersion: v1
kind: Secret
metadata:
  name: ledgerd-db
  namespace: ledger
type: Opaque
data:
  username: bGVkZ2VyZA==
  password: {V}
""",
        "h6_b64_pass",
        True,
    ),
    (
        "deploy/k8s/overlays/staging/pricing-secret.yaml",
        r"""apiVersion: v1
kind: Secret
metadata:
  name: pricing-env
stringData:
  DATABASE_URL: "{V}"
  REDIS_URL: "{V2}"
""",
        "h6_db_uri",
        True,
    ),
    (
        "deploy/k8s/overlays/prod/kustomization.yaml",
        r"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shipping
resources:
  - ../../base
secretGenerator:
  - name: shipping-carriers
    literals:
      - DHL_API_KEY={V}
      - FEDEX_SECRET={V2}
images:
  - name: shipping
    newTag: 2.14.3
""",
        "h6_api_token",
        True,
    ),
    (
        "deploy/k8s/base/registry-pull-secret.yaml",
        r"""apiVersion: v1
kind: Secret
metadata:
  name: acme-registry
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: |
    {"auths":{"registry.acme-corp.io":{"auth":"{V}"}}}
""",
        "h6_basic_b64",
        True,
    ),
    (
        "deploy/helm/loyalty/values-staging.yaml",
        r"""replicaCount: 2
image:
  repository: registry.acme-corp.io/loyalty
  tag: "3.8.0"
postgresql:
  enabled: true
  auth:
    username: loyalty
    password: "{V}"
    postgresPassword: "{V2}"
redis:
  auth:
    password: "{V3}"
""",
        "h6_url_pass",
        True,
    ),
    (
        "deploy/helm/catalog/values-prod.yaml",
        r"""ingress:
  enabled: true
  hosts:
    - catalog.acme-corp.io
env:
  - name: TYPESENSE_API_KEY
    value: "{V}"
  - name: LOG_LEVEL
    value: info
""",
        "h6_api_token",
        True,
    ),
    (
        "deploy/argocd/repo-creds.yaml",
        r"""apiVersion: v1
kind: Secret
metadata:
  name: acme-gitops-repo
  namespace: argocd
  labels:
    argocd.argoproj.io/secret-type: repository
stringData:
  type: git
  url: https://github.com/acme-corp/gitops
  username: acme-argocd-bot
  password: {V}
""",
        "h6_github_pat",
        True,
    ),
    (
        "infra/terraform/envs/prod/providers.tf",
        r"""terraform {
  required_providers {
    datadog = {
      source  = "DataDog/datadog"
      version = "~> 3.39"
    }
  }
}

provider "datadog" {
  api_key = "{V}"
  app_key = "{V2}"
  api_url = "https://api.datadoghq.eu/"
}
""",
        "h6_hex32",
        True,
    ),
    (
        "infra/terraform/modules/rds/main.tf",
        r"""resource "aws_db_instance" "ledger" {
  identifier             = "ledger-prod"
  engine                 = "postgres"
  engine_version         = "15.5"
  instance_class         = "db.r6g.large"
  allocated_storage      = 200
  username               = "ledger_admin"
  password               = "{V}"
  skip_final_snapshot    = false
  deletion_protection    = true
}
""",
        "h6_strong_pass",
        True,
    ),
    (
        "infra/terraform/envs/staging/terraform.tfvars",
        r"""environment      = "staging"
region           = "eu-west-1"
db_master_pass   = "{V}"
pagerduty_token  = "{V2}"
enable_waf       = false
""",
        "h6_strong_pass",
        True,
    ),
    (
        "infra/terraform/.terraformrc",
        r"""credentials "app.terraform.io" {
  token = "{V}"
}
""",
        "h6_tfc_token",
        True,
    ),
    (
        "infra/ansible/group_vars/db_servers.yml",
        r"""---
postgresql_version: 15
postgresql_users:
  - name: replicator
    password: "{V}"
    role_attr_flags: REPLICATION
  - name: ledgerd
    password: "{V2}"
pgbouncer_listen_port: 6432
""",
        "h6_strong_pass",
        True,
    ),
    (
        "infra/ansible/inventories/lab/hosts.ini",
        r"""[web]
lab-web-01 ansible_host=192.168.40.11
lab-web-02 ansible_host=192.168.40.12

[web:vars]
ansible_user=deploy
ansible_password={V}
ansible_become_pass={V2}
""",
        "h6_word_pass",
        True,
    ),
    (
        "infra/chef/cookbooks/acme_rabbitmq/attributes/default.rb",
        r"""default['acme_rabbitmq']['version'] = '3.12.13'
default['acme_rabbitmq']['vhosts'] = %w(/ orders shipping)
default['acme_rabbitmq']['users']['shipping'] = {
  'password' => '{V}',
  'tags' => 'management'
}
""",
        "h6_word_pass",
        True,
    ),
    (
        "infra/chef/.chef/acme-validator.pem",
        r"""{V}
""",
        "h6_rsa_key",
        True,
    ),
    (
        "infra/puppet/hieradata/common.yaml",
        r"""---
profile::mysql::root_password: '{V}'
profile::monitoring::nagios_password: '{V2}'
profile::ntp::servers:
  - 0.pool.ntp.org
  - 1.pool.ntp.org
""",
        "h6_strong_pass",
        True,
    ),
    (
        "infra/salt/pillar/redis.sls",
        r"""redis:
  bind: 0.0.0.0
  port: 6379
  requirepass: {V}
  maxmemory: 2gb
""",
        "h6_shared_secret",
        True,
    ),
    (
        "docker-compose.yml",
        r"""services:
  postgres:
    image: postgres:15-alpine
    environment:
      POSTGRES_USER: acme
      POSTGRES_PASSWORD: {V}
    ports:
      - "5432:5432"
  rabbitmq:
    image: rabbitmq:3.12-management
    environment:
      RABBITMQ_DEFAULT_USER: acme
      RABBITMQ_DEFAULT_PASS: {V2}
  minio:
    image: minio/minio:RELEASE.2024-04-18T19-09-19Z
    command: server /data --console-address ":9001"
    environment:
      MINIO_ROOT_USER: minioadmin
      MINIO_ROOT_PASSWORD: {V3}
""",
        "h6_word_pass",
        True,
    ),
    (
        "services/fraud-engine/Dockerfile",
        r"""FROM rust:1.77 AS build
WORKDIR /src
ENV CARGO_REGISTRIES_ACME_TOKEN={V}
COPY . .
RUN cargo build --release

FROM gcr.io/distroless/cc-debian12
COPY --from=build /src/target/release/fraud-engine /fraud-engine
ENTRYPOINT ["/fraud-engine"]
""",
        "h6_api_token",
        True,
    ),
    (
        "services/storefront-bff/Dockerfile",
        r"""FROM node:20-alpine AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN echo "//npm.pkg.github.com/:_authToken={V}" > .npmrc && \
    npm ci --omit=dev && rm .npmrc

FROM node:20-alpine
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY dist ./dist
CMD ["node", "dist/main.js"]
""",
        "h6_github_pat",
        True,
    ),
    (
        "services/storefront-bff/.npmrc",
        r"""registry=https://registry.npmjs.org/
@acme:registry=https://npm.pkg.github.com/
//registry.npmjs.org/:_authToken={V}
""",
        "h6_npm_token",
        True,
    ),
    (
        "services/crmsync/NuGet.Config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
    <add key="acme" value="https://pkgs.dev.azure.com/acme/_packaging/acme/nuget/v3/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <acme>
      <add key="Username" value="azdo-build" />
      <add key="ClearTextPassword" value="{V}" />
    </acme>
  </packageSourceCredentials>
</configuration>
""",
        "h6_api_token",
        True,
    ),
    (
        "services/shipping/.mvn/settings.xml",
        r"""<settings>
  <servers>
    <server>
      <id>acme-releases</id>
      <username>maven-deployer</username>
      <password>{V}</password>
    </server>
  </servers>
</settings>
""",
        "h6_strong_pass",
        True,
    ),
    (
        "libs/py-acme-common/.pypirc",
        r"""[distutils]
index-servers =
    pypi
    acme

[pypi]
username = __token__
password = {V}

[acme]
repository = https://pypi.acme-corp.io/simple/
""",
        "h6_pypi_token",
        True,
    ),
    (
        ".github/workflows/release.yml",
        r"""name: release
on:
  push:
    tags: ["v*"]
jobs:
  publish:
    runs-on: ubuntu-latest
    env:
      TWINE_USERNAME: __token__
      SLACK_WEBHOOK_URL: {V}
    steps:
      - uses: actions/checkout@v4
      - run: make dist
      - run: curl -X POST -H 'Content-type: application/json' --data '{"text":"released"}' "$SLACK_WEBHOOK_URL"
""",
        "h6_slack_webhook",
        True,
    ),
    (
        ".gitlab-ci.yml",
        r"""stages: [test, deploy]

variables:
  POSTGRES_DB: ledgerd_test
  POSTGRES_USER: ledgerd
  POSTGRES_PASSWORD: {V}

test:
  stage: test
  image: python:3.12
  services: [postgres:15]
  script:
    - pip install -r requirements-dev.txt
    - pytest -q
""",
        "h6_word_pass",
        True,
    ),
    (
        "Jenkinsfile",
        r"""pipeline {
  agent { label 'docker' }
  environment {
    REGISTRY = 'registry.acme-corp.io'
    SONAR_TOKEN = '{V}'
  }
  stages {
    stage('Build') {
      steps { sh './gradlew build' }
    }
    stage('Sonar') {
      steps { sh './gradlew sonar -Dsonar.token=$SONAR_TOKEN' }
    }
  }
}
""",
        "h6_hex40",
        True,
    ),
    (
        ".circleci/config.yml",
        r"""version: 2.1
jobs:
  integration:
    docker:
      - image: cimg/ruby:3.3
      - image: cimg/postgres:15.6
        environment:
          POSTGRES_PASSWORD: {V}
    steps:
      - checkout
      - run: bundle exec rspec spec/integration
""",
        "h6_word_pass",
        True,
    ),
    (
        "azure-pipelines.yml",
        r"""trigger:
  - main
pool:
  vmImage: ubuntu-latest
variables:
  buildConfiguration: Release
  nugetApiKey: {V}
steps:
  - script: dotnet build --configuration $(buildConfiguration)
  - script: dotnet nuget push **/*.nupkg -k $(nugetApiKey) -s https://api.nuget.org/v3/index.json
""",
        "h6_nuget_key",
        True,
    ),
    (
        "bitbucket-pipelines.yml",
        r"""image: node:20
pipelines:
  branches:
    main:
      - step:
          name: Deploy
          script:
            - export HEROKU_API_KEY={V}
            - npx heroku container:release web -a acme-storefront
""",
        "h6_consul_token",
        True,
    ),
    (
        ".drone.yml",
        r"""kind: pipeline
type: docker
name: default
steps:
  - name: publish
    image: plugins/docker
    settings:
      registry: registry.acme-corp.io
      repo: registry.acme-corp.io/reconcile
      username: drone
      password: {V}
""",
        "h6_strong_pass",
        True,
    ),
]
TEMPLATES += [
    # ======================= positives: scripts, tests, fixtures, docs =======================
    (
        "scripts/restore_staging_db.sh",
        r"""#!/usr/bin/env bash
set -euo pipefail

DUMP=${1:?usage: restore_staging_db.sh DUMP}
export PGPASSWORD='{V}'
pg_restore --clean --no-owner -h pg-staging.internal -U ledger_admin -d ledgerd "$DUMP"
echo "restored $DUMP"
""",
        "h6_strong_pass",
        True,
    ),
    (
        "scripts/rotate-consul-acl.sh",
        r"""#!/bin/sh
# bootstrap token from the first cluster install, still works
export CONSUL_HTTP_ADDR=https://consul.service.dc1:8501
export CONSUL_HTTP_TOKEN={V}
consul acl token list -format=json | jq '.[] | select(.Description | test("legacy"))'
""",
        "h6_consul_token",
        True,
    ),
    (
        "scripts/windows/Map-ReportShare.ps1",
        r"""param(
    [string]$Drive = "R:"
)

$user = "ACME\svc_reports"
$pass = ConvertTo-SecureString "{V}" -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($user, $pass)
New-PSDrive -Name $Drive.TrimEnd(':') -PSProvider FileSystem -Root "\\fs01\reports" -Credential $cred -Persist
""",
        "h6_strong_pass",
        True,
    ),
    (
        "scripts/windows/Deploy-CrmSync.ps1",
        r"""$ErrorActionPreference = "Stop"
$env:OCTOPUS_URL = "https://deploy.acme-corp.io"
$env:OCTOPUS_API_KEY = "API-{V}"
octo create-release --project "CrmSync" --version $args[0] --deployTo Staging
""",
        "h6_api_token",
        True,
    ),
    (
        "scripts/backfill_loyalty_points.py",
        r"""#!/usr/bin/env python3
# Backfill points for orders placed during the outage (INC-2291).
import psycopg2

conn = psycopg2.connect(
    host="pg-loyalty.internal",
    dbname="loyalty",
    user="loyalty_admin",
    password="{V}",
)
with conn, conn.cursor() as cur:
    cur.execute("SELECT id FROM orders WHERE created_at BETWEEN %s AND %s", ("2024-03-02", "2024-03-03"))
""",
        "h6_url_pass",
        True,
    ),
    (
        "scripts/vault-login.sh",
        r"""#!/usr/bin/env bash
export VAULT_ADDR=https://vault.acme-corp.io
export VAULT_TOKEN={V}
vault kv get -format=json secret/ledgerd/prod | jq .data.data
""",
        "h6_vault_token",
        True,
    ),
    (
        "tools/ssh/deploy_id_rsa",
        r"""{V}
""",
        "h6_openssh_key",
        True,
    ),
    (
        "services/ledgerd/certs/ledgerd-mtls.key",
        r"""{V}
""",
        "h6_pkcs8_key",
        True,
    ),
    (
        "infra/terraform/envs/prod/gcp-sa.json",
        r"""{
  "type": "service_account",
  "project_id": "acme-analytics-prod",
  "private_key_id": "5f0c1d9a2be84e7c93a1b6d4e8f2a7c0d1e3b5a9",
  "private_key": "{V}",
  "client_email": "bq-loader@acme-analytics-prod.iam.gserviceaccount.com",
  "client_id": "104938273645019283746",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
        "h6_gcp_escaped_key",
        True,
    ),
    (
        "services/pricing/k8s/jwt-signing.yaml",
        r"""apiVersion: v1
kind: ConfigMap
metadata:
  name: pricing-jwt
data:
  signing.pem: |
    {IV}
""",
        "h6_ec_key",
        True,
    ),
    (
        "services/ledgerd/tests/fixtures/cassettes/test_sync_bank_statements.yaml",
        r"""interactions:
- request:
    body: null
    headers:
      Accept: ['application/json']
      Authorization: ['Bearer {V}']
    method: GET
    uri: https://api.openbanking.partnerbank.com/v3/accounts/88120041/statements?from=2024-01-01
  response:
    body: {string: '{"statements": [], "next": null}'}
    headers:
      Content-Type: ['application/json']
    status: {code: 200, message: OK}
version: 1
""",
        "h6_jwt",
        True,
    ),
    (
        "services/notifications/spec/cassettes/Slack/posts_a_message.yml",
        r"""---
http_interactions:
- request:
    method: post
    uri: https://slack.com/api/chat.postMessage
    body:
      encoding: UTF-8
      string: '{"channel":"C04R1ALERTS","text":"Deploy finished"}'
    headers:
      Authorization:
      - Bearer {V}
      Content-Type:
      - application/json
  response:
    status:
      code: 200
      message: OK
    body:
      encoding: UTF-8
      string: '{"ok":true}'
  recorded_at: Tue, 12 Mar 2024 09:14:03 GMT
recorded_with: VCR 6.2.0
""",
        "h6_slack_bot",
        True,
    ),
    (
        "services/storefront-bff/test/fixtures/github-api.har.json",
        r"""{
  "log": {
    "version": "1.2",
    "entries": [
      {
        "request": {
          "method": "GET",
          "url": "https://api.github.com/repos/acme-corp/storefront/releases/latest",
          "headers": [
            {"name": "Accept", "value": "application/vnd.github+json"},
            {"name": "Authorization", "value": "token {V}"}
          ]
        },
        "response": {"status": 200}
      }
    ]
  }
}
""",
        "h6_github_pat",
        True,
    ),
    (
        "services/pricing/internal/fx/testdata/recording.json",
        r"""[
  {
    "method": "POST",
    "url": "https://api.openai.com/v1/chat/completions",
    "request_headers": {
      "Authorization": "Bearer {V}",
      "Content-Type": "application/json"
    },
    "status": 200
  }
]
""",
        "h6_openai_key",
        True,
    ),
    (
        "services/shipping/src/test/java/com/acme/shipping/CarrierIT.java",
        r"""package com.acme.shipping;

import org.junit.jupiter.api.Test;
import org.testcontainers.containers.PostgreSQLContainer;
import org.testcontainers.junit.jupiter.Container;

class CarrierIT {

    @Container
    static PostgreSQLContainer<?> pg = new PostgreSQLContainer<>("postgres:15")
            .withUsername("shipping")
            .withPassword("{V}");

    @Test
    void createsLabel() {
        var client = new DhlClient("https://express.api.dhl.com", "{V2}");
        client.ping();
    }
}
""",
        "h6_word_pass",
        True,
    ),
    (
        "services/fraud-engine/tests/integration_kafka.rs",
        r"""use rdkafka::config::ClientConfig;

#[tokio::test]
#[ignore = "needs the shared staging cluster"]
async fn consumes_scoring_requests() {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", "kafka-staging.acme-corp.io:9094")
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", "fraud-engine")
        .set("sasl.password", "{V}")
        .create()
        .unwrap();
}
""",
        "h6_strong_pass",
        True,
    ),
    (
        "services/ledgerd/tests/conftest.py",
        r"""import pytest


@pytest.fixture(scope="session")
def partner_api():
    # sandbox creds from the partner portal (shared by the whole team)
    return PartnerClient(
        base_url="https://sandbox.partnerbank.com",
        client_id="acme-sbx-0042",
        client_secret="{V}",
    )
""",
        "h6_api_token",
        True,
    ),
    (
        "services/catalog_ex/test/support/fixtures/accounts.exs",
        r"""defmodule CatalogEx.AccountsFixtures do
  def admin_fixture(attrs \\ %{}) do
    {:ok, user} =
      attrs
      |> Enum.into(%{email: "ops@acme-corp.io", password: "{V}"})
      |> CatalogEx.Accounts.register_admin()

    user
  end
end
""",
        "h6_word_pass",
        True,
    ),
    (
        "db/seeds/002_admin_users.sql",
        r"""-- initial operator accounts for the back-office (staging)
INSERT INTO operators (email, display_name, api_token, created_at) VALUES
  ('ops@acme-corp.io', 'Ops', '{V}', now()),
  ('support@acme-corp.io', 'Support', '{V2}', now());
""",
        "h6_hex40",
        True,
    ),
    (
        "db/migrations/20240311094500_create_replication_user.sql",
        r"""-- +goose Up
CREATE ROLE debezium WITH LOGIN REPLICATION PASSWORD '{V}';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO debezium;

-- +goose Down
DROP ROLE debezium;
""",
        "h6_strong_pass",
        True,
    ),
    (
        "services/notifications/db/seeds.rb",
        r"""Integration.find_or_create_by!(name: "pagerduty") do |i|
  i.routing_key = "{V}"
  i.enabled = true
end

Integration.find_or_create_by!(name: "statuspage") do |i|
  i.api_key = "{V2}"
end
""",
        "h6_hex32",
        True,
    ),
    (
        "docs/runbooks/ledgerd-db-failover.md",
        r"""# Ledgerd: database failover

1. Page the DBA on call (PagerDuty service *ledger-db*).
2. Connect to the replica with the break-glass account:

   ```
   psql "host=pg-replica.internal user=breakglass password={V} dbname=ledgerd"
   ```

3. Promote: `SELECT pg_promote();`
4. Update the `ledgerd-db` secret and restart the deployment.
""",
        "h6_strong_pass",
        True,
    ),
    (
        "docs/onboarding/local-setup.md",
        r"""## Local setup

Ask in #platform-help for access to the artifact registry, then log in:

```bash
docker login registry.acme-corp.io -u onboarding -p {V}
```

The shared Grafana login for the dev cluster is `dev` / `{V2}`.
""",
        "h6_shared_secret",
        True,
    ),
    (
        "wiki/Integrations/Partner-SFTP.md",
        r"""Partner SFTP
============

| Environment | Host                     | User        | Password |
|-------------|--------------------------|-------------|----------|
| UAT         | sftp-uat.partnerbank.com | acme_uat    | {V}      |
| Production  | sftp.partnerbank.com     | acme_recon  | {V2}     |

Files land in `/outbound/statements/` at 02:00 UTC.
""",
        "h6_url_pass",
        True,
    ),
    (
        "wiki/Monitoring/Alert-Routing.md",
        r"""# Alert routing

Prometheus Alertmanager posts to Slack through the incoming webhook below
(channel #alerts-prod):

    {V}

Do not share outside the platform team.
""",
        "h6_slack_webhook",
        True,
    ),
    (
        "services/pricing/Makefile",
        r"""APP=pricing
DB_URL ?= postgres://pricing:{V}@localhost:5432/pricing?sslmode=disable

migrate:
	migrate -path db/migrations -database "$(DB_URL)" up

run:
	go run ./cmd/pricing
""",
        "h6_word_pass",
        True,
    ),
    (
        "services/reconcile/src/test/resources/application.conf",
        r"""include "base.conf"
reconcile.bank-api.webhook-secret = "{V}"
reconcile.db.url = "jdbc:h2:mem:reconcile;MODE=PostgreSQL"
""",
        "h6_webhook_secret",
        True,
    ),
    (
        "services/storefront-bff/src/webhooks/verify.ts",
        r"""import crypto from "node:crypto";

const SIGNING_SECRET = "{V}";

export function verify(body: string, signature: string): boolean {
  const mac = crypto.createHmac("sha256", SIGNING_SECRET).update(body).digest("hex");
  return crypto.timingSafeEqual(Buffer.from(mac), Buffer.from(signature));
}
""",
        "h6_hmac_key",
        True,
    ),
    (
        "infra/ansible/roles/haproxy/templates/haproxy.cfg.j2",
        r"""global
    log /dev/log local0

listen stats
    bind *:8404
    stats enable
    stats uri /stats
    stats auth admin:{V}

frontend https_in
    bind *:443 ssl crt /etc/haproxy/certs/
    default_backend {{ haproxy_backend }}
""",
        "h6_word_pass",
        True,
    ),
    (
        ".env.ci",
        r"""{V}
AWS_DEFAULT_REGION=eu-west-1
""",
        "h6_aws_env_pair",
        True,
    ),
    (
        "services/ledgerd/alembic.ini",
        r"""[alembic]
script_location = migrations
sqlalchemy.url = {V}

[loggers]
keys = root,sqlalchemy,alembic
""",
        "h6_db_uri",
        True,
    ),
    (
        "services/search-indexer/indexer/clients.py",
        r"""import requests

session = requests.Session()
session.headers.update({"Authorization": "Basic {V}"})


def push(doc):
    return session.post("https://es-prod-1.internal:9200/products/_doc", json=doc, timeout=5)
""",
        "h6_basic_b64",
        True,
    ),
]
TEMPLATES += [
    # ======================= negatives: same shapes, nothing that grants access =======================
    (
        "services/ledgerd/config/settings/production.py",
        r"""import os

from .base import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["LEDGERD_DB_NAME"],
        "USER": os.environ["LEDGERD_DB_USER"],
        "PASSWORD": "{V}",
        "HOST": os.environ["LEDGERD_DB_HOST"],
    }
}
""",
        "h6_placeholder",
        False,
    ),
    (
        "services/pricing/internal/config/config_test.go",
        r"""package config

import "testing"

func TestLoadFromEnv(t *testing.T) {
	t.Setenv("PRICING_DATABASE_URL", "{V}")
	t.Setenv("PRICING_FX_API_KEY", "{V2}")
	cfg, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.FXAPIKey == "" {
		t.Error("expected api key to be loaded")
	}
}
""",
        "h6_fake_test",
        False,
    ),
    (
        "services/pricing/internal/config/config.go",
        r"""package config

import "os"

type Config struct {
	DatabaseURL string
	FXAPIKey    string
}

func Load() (Config, error) {
	return Config{
		DatabaseURL: os.Getenv("PRICING_DATABASE_URL"),
		FXAPIKey:    os.Getenv("{V}"),
	}, nil
}
""",
        "h6_secret_name",
        False,
    ),
    (
        "services/shipping/src/main/resources/application.properties",
        r"""spring.application.name=shipping
spring.datasource.url=${SHIPPING_DB_URL}
spring.datasource.username=${SHIPPING_DB_USER}
spring.datasource.password={V}
carrier.dhl.api-key={V2}
""",
        "h6_placeholder",
        False,
    ),
    (
        "services/shipping/src/main/resources/application-k8s.yml",
        r"""spring:
  config:
    import: "optional:configtree:/etc/secrets/"
  datasource:
    password: "{V}"
carrier:
  fedex:
    secret: "{V2}"
""",
        "h6_secret_ref",
        False,
    ),
    (
        "services/loyalty/src/main/resources/messages_i18n.properties",
        r"""login.title=Sign in
login.password.label=Password
login.password.invalid={V}
login.password.tooShort={V2}
login.submit=Continue
""",
        "h6_i18n",
        False,
    ),
    (
        "services/loyalty/src/main/kotlin/com/acme/loyalty/auth/Errors.kt",
        r"""package com.acme.loyalty.auth

enum class AuthError(val code: String) {
    EXPIRED("{V}"),
    INVALID("{V2}"),
}

const val PASSWORD_MIN_LENGTH = 12
""",
        "h6_error_code",
        False,
    ),
    (
        "services/crmsync/CrmSync.Api/appsettings.json",
        r"""{
  "ConnectionStrings": {
    "Crm": "{V}"
  },
  "Salesforce": {
    "ClientId": "3MVG9fe4g9fhX0E5",
    "ClientSecret": "{V2}"
  },
  "AllowedHosts": "*"
}
""",
        "h6_placeholder",
        False,
    ),
    (
        "services/crmsync/CrmSync.Api/appsettings.Production.json",
        r"""{
  "KeyVault": {
    "Uri": "https://kv-crm-prod.vault.azure.net/"
  },
  "Salesforce": {
    "ClientSecret": "{V}"
  }
}
""",
        "h6_secret_ref",
        False,
    ),
    (
        "services/crmsync/CrmSync.Tests/SalesforceClientTests.cs",
        r"""using Xunit;

public class SalesforceClientTests
{
    [Fact]
    public async Task Refresh_Fails_With_Bad_Secret()
    {
        var client = new SalesforceClient("3MVG9fe4g9fhX0E5", "{V}", new FakeHandler(401));
        await Assert.ThrowsAsync<AuthException>(() => client.RefreshAsync());
    }
}
""",
        "h6_fake_test",
        False,
    ),
    (
        "services/storefront-bff/.env.example",
        r"""PORT=3000
CATALOG_URL=http://localhost:8082
SESSION_SECRET={V}
STRIPE_SECRET_KEY={V2}
SENDGRID_API_KEY={V3}
""",
        "h6_placeholder",
        False,
    ),
    (
        "services/storefront-bff/src/checkout/publishable.ts",
        r"""// Publishable keys are safe to ship to the browser.
export const STRIPE_PUBLISHABLE_KEY = "{V}";
export const STRIPE_ACCOUNT_COUNTRY = "DE";
""",
        "h6_stripe_pub",
        False,
    ),
    (
        "services/storefront-bff/src/i18n/de.json",
        r"""{
  "account": {
    "password": "Passwort",
    "passwordHint": "Mindestens 12 Zeichen",
    "passwordError": "{V}",
    "tokenExpired": "{V2}"
  }
}
""",
        "h6_i18n",
        False,
    ),
    (
        "services/storefront-bff/package-lock.json",
        r"""{
  "name": "storefront-bff",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/zod": {
      "version": "3.23.8",
      "resolved": "https://registry.npmjs.org/zod/-/zod-3.23.8.tgz",
      "integrity": "sha512-{V}"
    }
  }
}
""",
        "h6_b64_64",
        False,
    ),
    (
        "services/notifications/config/credentials.yml.enc",
        r"""{V}""",
        "h6_rails_enc",
        False,
    ),
    (
        "services/notifications/config/database.production.yml",
        r"""production:
  adapter: postgresql
  url: <%= ENV["DATABASE_URL"] %>
  password: "{V}"
""",
        "h6_placeholder",
        False,
    ),
    (
        "services/notifications/spec/cassettes/Twilio/sends_sms.yml",
        r"""---
http_interactions:
- request:
    method: post
    uri: https://api.twilio.com/2010-04-01/Accounts/AC5e2b07d3f1a94c0e8b6d1f2a3c4e5f60/Messages.json
    headers:
      Authorization:
      - Basic {V}
  response:
    status:
      code: 201
      message: CREATED
  recorded_at: Wed, 13 Mar 2024 10:01:44 GMT
recorded_with: VCR 6.2.0
""",
        "h6_redacted",
        False,
    ),
    (
        "services/notifications/spec/support/vcr.rb",
        r"""VCR.configure do |c|
  c.cassette_library_dir = "spec/cassettes"
  c.hook_into :webmock
  c.filter_sensitive_data("{V}") { ENV.fetch("SLACK_BOT_TOKEN", "") }
  c.filter_sensitive_data("{V2}") { ENV.fetch("TWILIO_AUTH_TOKEN", "") }
end
""",
        "h6_redacted",
        False,
    ),
    (
        "services/notifications/spec/factories/users.rb",
        r"""FactoryBot.define do
  factory :user do
    email { Faker::Internet.email }
    encrypted_password { "{V}" }
    confirmed_at { Time.current }
  end
end
""",
        "h6_pw_hash",
        False,
    ),
    (
        "services/billing-php/.env.example",
        r"""APP_NAME=Billing
APP_ENV=local
APP_KEY={V}
DB_PASSWORD={V2}
MAILGUN_SECRET={V3}
""",
        "h6_empty",
        False,
    ),
    (
        "services/billing-php/config/database.php",
        r"""<?php

return [
    'connections' => [
        'mysql' => [
            'driver' => 'mysql',
            'host' => env('DB_HOST', '127.0.0.1'),
            'username' => env('DB_USERNAME', 'forge'),
            'password' => env('DB_PASSWORD', '{V}'),
        ],
    ],
];
""",
        "h6_empty",
        False,
    ),
    (
        "services/billing-php/tests/Feature/LoginTest.php",
        r"""<?php

namespace Tests\Feature;

class LoginTest extends TestCase
{
    public function test_stored_hash_is_not_plaintext(): void
    {
        $user = User::factory()->create(['password' => '{V}']);
        $this->assertStringStartsWith('$', $user->password);
    }
}
""",
        "h6_pw_hash",
        False,
    ),
    (
        "services/fraud-engine/config/production.toml",
        r"""[postgres]
host = "pg-fraud.internal"
user = "fraudsvc"
password = "{V}"

[scoring]
model_sha256 = "{V2}"
""",
        "h6_sops_enc",
        False,
    ),
    (
        "services/fraud-engine/Cargo.lock",
        r"""# This file is automatically @generated by Cargo.
version = 3

[[package]]
name = "reqwest"
version = "0.12.4"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"

[[package]]
name = "serde"
version = "1.0.201"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V2}"
""",
        "h6_sha256",
        False,
    ),
    (
        "services/fraud-engine/src/config.rs",
        r"""use std::env;

pub struct Settings {
    pub db_password: String,
}

impl Settings {
    pub fn from_env() -> Self {
        Self { db_password: env::var("{V}").expect("db password must be set") }
    }
}
""",
        "h6_secret_name",
        False,
    ),
    (
        "services/reconcile/conf/production.conf",
        r"""include "application.conf"
reconcile.db.password = ${RECONCILE_DB_PASSWORD}
reconcile.bank-api.client-secret = "{V}"
""",
        "h6_placeholder",
        False,
    ),
    (
        "services/reconcile/src/test/scala/com/acme/reconcile/ParserSpec.scala",
        r"""package com.acme.reconcile

class ParserSpec extends munit.FunSuite {
  test("statement id round-trips") {
    val id = "{V}"
    assertEquals(StatementId.parse(id).toString, id)
  }
}
""",
        "h6_uuid_id",
        False,
    ),
    (
        "services/catalog_ex/config/runtime.exs",
        r"""import Config

if config_env() == :prod do
  database_url =
    System.get_env("DATABASE_URL") ||
      raise "environment variable DATABASE_URL is missing."

  config :catalog_ex, CatalogExWeb.Endpoint,
    secret_key_base: "{V}"
end
""",
        "h6_placeholder",
        False,
    ),
    (
        "services/catalog_ex/mix.lock",
        r"""%{
  "ecto": {:hex, :ecto, "3.11.2", "{V}", [:mix], [], "hexpm", "{V2}"},
}
""",
        "h6_hex64",
        False,
    ),
    (
        "services/search-indexer/indexer/settings.example.ini",
        r"""[elasticsearch]
hosts = https://localhost:9200
username = elastic
password = {V}

[kafka]
sasl_password = {V2}
""",
        "h6_placeholder",
        False,
    ),
    (
        "services/search-indexer/README.md",
        r"""# search-indexer

Point the indexer at a local broker:

```
export BROKER_URL={V}
python -m indexer
```
""",
        "h6_example_uri",
        False,
    ),
    (
        "services/search-indexer/tests/test_s3_export.py",
        r"""from moto import mock_aws


@mock_aws
def test_export_writes_manifest(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "{V}")
    export_manifest("acme-exports-test")
""",
        "h6_aws_doc",
        False,
    ),
]
TEMPLATES += [
    (
        "deploy/k8s/base/ledgerd-deployment.yaml",
        r"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: ledgerd
spec:
  template:
    spec:
      containers:
        - name: ledgerd
          image: registry.acme-corp.io/ledgerd@{V}
          env:
            - name: LEDGERD_DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: ledgerd-db
                  key: password
""",
        "h6_docker_digest",
        False,
    ),
    (
        "deploy/k8s/base/pricing-deployment.yaml",
        r"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: pricing
spec:
  template:
    spec:
      containers:
        - name: pricing
          env:
            - name: PRICING_FX_API_KEY
              valueFrom:
                secretKeyRef:
                  name: {V}
                  key: api-key
""",
        "h6_secret_name",
        False,
    ),
    (
        "deploy/k8s/sealed/ledgerd-db.sealed.yaml",
        r"""apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: ledgerd-db
  namespace: ledger
spec:
  encryptedData:
    password: {V}
    username: {V2}
""",
        "h6_sealed",
        False,
    ),
    (
        "deploy/k8s/external-secrets/shipping.yaml",
        r"""apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: shipping-carriers
spec:
  secretStoreRef:
    name: aws-secrets-manager
    kind: ClusterSecretStore
  data:
    - secretKey: DHL_API_KEY
      remoteRef:
        key: "{V}"
""",
        "h6_secret_ref",
        False,
    ),
    (
        "deploy/helm/loyalty/values.yaml",
        r"""postgresql:
  enabled: true
  auth:
    username: loyalty
    password: "{V}"
    existingSecret: ""
redis:
  auth:
    password: "{V2}"
""",
        "h6_empty",
        False,
    ),
    (
        "deploy/helm/loyalty/templates/secret.yaml",
        r"""apiVersion: v1
kind: Secret
metadata:
  name: {{ include "loyalty.fullname" . }}
type: Opaque
data:
  db-password: {V}
""",
        "h6_placeholder",
        False,
    ),
    (
        "deploy/helm/catalog/values.schema.json",
        r"""{
  "$schema": "https://json-schema.org/draft-07/schema#",
  "properties": {
    "typesenseApiKey": {
      "type": "string",
      "description": "Admin API key; set via --set or the catalog-typesense secret",
      "default": "{V}"
    }
  }
}
""",
        "h6_placeholder",
        False,
    ),
    (
        "deploy/helm/catalog/values-prod.enc.yaml",
        r"""env:
    TYPESENSE_API_KEY: {V}
    SENTRY_DSN: {V2}
sops:
    kms:
        - arn: arn:aws:kms:eu-west-1:123456789012:key/7c1d5d1e-2f0a-4b6e-9a41-3d8b2c7e9f10
    lastmodified: "2024-04-02T08:11:54Z"
    version: 3.8.1
""",
        "h6_sops_enc",
        False,
    ),
    (
        "deploy/ingress/tls-secret.yaml",
        r"""apiVersion: v1
kind: ConfigMap
metadata:
  name: partner-ca
data:
  ca.crt: |
    {IV}
""",
        "h6_cert",
        False,
    ),
    (
        "infra/terraform/envs/prod/variables.tf",
        r"""variable "db_master_pass" {
  type      = string
  sensitive = true
  default   = "{V}"
}

variable "datadog_api_key" {
  type      = string
  sensitive = true
}
""",
        "h6_empty",
        False,
    ),
    (
        "infra/terraform/modules/rds/secrets.tf",
        r"""data "aws_secretsmanager_secret_version" "ledger_db" {
  secret_id = "{V}"
}

locals {
  db_password = jsondecode(data.aws_secretsmanager_secret_version.ledger_db.secret_string)["password"]
}
""",
        "h6_secret_ref",
        False,
    ),
    (
        "infra/terraform/envs/prod/.terraform.lock.hcl",
        r"""provider "registry.terraform.io/datadog/datadog" {
  version     = "3.39.0"
  constraints = "~> 3.39"
  hashes = [
    "{V}",
    "{V2}",
    "{V3}",
  ]
}
""",
        "h6_tf_hash",
        False,
    ),
    (
        "infra/terraform/modules/bastion/keys.tf",
        r"""resource "aws_key_pair" "ops" {
  key_name   = "ops-bastion"
  public_key = "{V}"
}
""",
        "h6_ssh_pub",
        False,
    ),
    (
        "infra/terraform/modules/iam/ci.tf",
        r"""resource "aws_iam_role" "ci" {
  name = "ci-deployer"
  assume_role_policy = jsonencode({
    Statement = [{
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::{V}:root" }
      Action    = "sts:AssumeRole"
    }]
  })
}
""",
        "h6_account_id",
        False,
    ),
    (
        "infra/ansible/group_vars/all/vault.yml",
        r"""{V}
""",
        "h6_ansible_vault",
        False,
    ),
    (
        "infra/ansible/group_vars/db_servers_prod.yml",
        r"""---
postgresql_users:
  - name: ledgerd
    password: !vault |
      {IV}
""",
        "h6_ansible_vault",
        False,
    ),
    (
        "infra/ansible/roles/app/templates/env.j2",
        r"""LEDGERD_DB_PASSWORD={V}
LEDGERD_SECRET_KEY={V2}
""",
        "h6_placeholder",
        False,
    ),
    (
        "infra/ansible/roles/users/vars/main.yml",
        r"""users:
  - name: deploy
    groups: [sudo]
    password: "{V}"
    shell: /bin/bash
""",
        "h6_pw_hash",
        False,
    ),
    (
        "infra/chef/data_bags/rabbitmq/users.json",
        r"""{
  "id": "users",
  "shipping": {
    "encrypted_data": "{V}",
    "iv": "{V2}",
    "version": 3,
    "cipher": "aes-256-gcm"
  }
}
""",
        "h6_b64_32",
        False,
    ),
    (
        "infra/puppet/hieradata/production.eyaml",
        r"""---
profile::mysql::root_password: >
    {V}
profile::monitoring::nagios_password: {V2}
""",
        "h6_eyaml",
        False,
    ),
    (
        "infra/salt/pillar/redis_prod.sls",
        r"""#!yaml|gpg
redis:
  requirepass: |
    {IV}
""",
        "h6_pgp_message",
        False,
    ),
    (
        "infra/salt/states/redis/conf.sls",
        r"""/etc/redis/redis.conf:
  file.managed:
    - source: salt://redis/files/redis.conf.jinja
    - template: jinja
    - context:
        requirepass: "{V}"
""",
        "h6_placeholder",
        False,
    ),
    (
        "docker-compose.override.example.yml",
        r"""services:
  postgres:
    environment:
      POSTGRES_PASSWORD: {V}
  rabbitmq:
    environment:
      RABBITMQ_DEFAULT_PASS: {V2}
""",
        "h6_placeholder",
        False,
    ),
    (
        "docker-compose.prod.yml",
        r"""services:
  ledgerd:
    image: registry.acme-corp.io/ledgerd@{V}
    secrets:
      - ledgerd_db_password
    environment:
      LEDGERD_DB_PASSWORD_FILE: /run/secrets/ledgerd_db_password
secrets:
  ledgerd_db_password:
    external: true
""",
        "h6_docker_digest",
        False,
    ),
    (
        "services/ledgerd/Dockerfile",
        r"""FROM python:3.12-slim@{V}
ARG PIP_INDEX_URL
ENV PYTHONUNBUFFERED=1
RUN --mount=type=secret,id=pip_token \
    PIP_EXTRA_INDEX_URL="https://__token__:$(cat /run/secrets/pip_token)@pypi.acme-corp.io/simple" \
    pip install -r requirements.txt
""",
        "h6_docker_digest",
        False,
    ),
    (
        ".github/workflows/ci.yml",
        r"""name: ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    services:
      postgres:
        image: postgres:15
        env:
          POSTGRES_PASSWORD: ${{ secrets.CI_PG_PASSWORD }}
    steps:
      - uses: actions/checkout@{V}
      - uses: actions/setup-python@{V2}
      - run: pytest
""",
        "h6_git_sha",
        False,
    ),
    (
        ".github/workflows/deploy.yml",
        r"""name: deploy
on:
  workflow_dispatch:
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: arn:aws:iam::123456789012:role/gh-deployer
          aws-region: eu-west-1
      - run: ./scripts/deploy.sh
        env:
          SLACK_WEBHOOK_URL: {V}
          DATADOG_API_KEY: {V2}
""",
        "h6_placeholder",
        False,
    ),
    (
        ".gitlab/ci/deploy.gitlab-ci.yml",
        r"""deploy:prod:
  stage: deploy
  image: alpine/helm:3.14.4
  script:
    - helm upgrade --install ledgerd deploy/helm/ledgerd --set db.password="$LEDGERD_DB_PASSWORD"
  variables:
    HELM_REGISTRY_PASSWORD: {V}
  only: [main]
""",
        "h6_placeholder",
        False,
    ),
    (
        "Jenkinsfile.release",
        r"""pipeline {
  agent any
  stages {
    stage('Publish') {
      steps {
        withCredentials([usernamePassword(credentialsId: '{V}', usernameVariable: 'U', passwordVariable: 'P')]) {
          sh './gradlew publish -PrepoUser=$U -PrepoPass=$P'
        }
      }
    }
  }
}
""",
        "h6_secret_name",
        False,
    ),
    (
        "azure-pipelines.release.yml",
        r"""variables:
  - group: crmsync-prod
steps:
  - task: AzureKeyVault@2
    inputs:
      azureSubscription: acme-prod
      KeyVaultName: kv-crm-prod
      SecretsFilter: "*"
  - script: dotnet nuget push **/*.nupkg -k "{V}" -s https://api.nuget.org/v3/index.json
""",
        "h6_placeholder",
        False,
    ),
    (
        ".buildkite/pipeline.yml",
        r"""steps:
  - label: ":docker: build"
    command: make image
    plugins:
      - docker-login#v3.0.0:
          username: buildkite
          password-env: {V}
""",
        "h6_secret_name",
        False,
    ),
    (
        ".circleci/config.prod.yml",
        r"""version: 2.1
jobs:
  integration:
    docker:
      - image: cimg/ruby:3.3@{V}
      - image: cimg/postgres:15.6
        environment:
          POSTGRES_HOST_AUTH_METHOD: trust
    steps:
      - checkout
""",
        "h6_docker_digest",
        False,
    ),
]
TEMPLATES += [
    (
        "scripts/restore_prod_db.sh",
        r"""#!/usr/bin/env bash
set -euo pipefail
export PGPASSWORD="{V}"
pg_restore --clean --no-owner -h "$PGHOST" -U ledger_admin -d ledgerd "$1"
""",
        "h6_placeholder",
        False,
    ),
    (
        "scripts/fetch-db-password.sh",
        r"""#!/usr/bin/env bash
# Prints the ledger DB password from Secrets Manager; never commit the output.
aws secretsmanager get-secret-value \
  --secret-id "{V}" \
  --query SecretString --output text | jq -r .password
""",
        "h6_secret_ref",
        False,
    ),
    (
        "scripts/windows/New-ServiceAccount.ps1",
        r"""param([Parameter(Mandatory)][string]$Name)

$pw = Read-Host -AsSecureString "Password for $Name"
New-ADUser -Name $Name -AccountPassword $pw -Enabled $true
Write-Host "{V}"
""",
        "h6_i18n",
        False,
    ),
    (
        "scripts/windows/Install-Agent.ps1",
        r"""$installer = "C:\Temp\dd-agent.msi"
$expected = "{V}"
$actual = (Get-FileHash $installer -Algorithm SHA256).Hash.ToLower()
if ($actual -ne $expected) { throw "checksum mismatch" }
Start-Process msiexec.exe -Wait -ArgumentList "/qn /i $installer APIKEY=$env:DD_API_KEY"
""",
        "h6_sha256",
        False,
    ),
    (
        "scripts/gen_test_jwt.py",
        r"""#!/usr/bin/env python3
import os

import jwt

# Signs tokens for local testing only; the key comes from the developer's env.
key = os.environ.get("LOCAL_JWT_KEY", "{V}")
print(jwt.encode({"sub": "local-dev"}, key, algorithm="HS256"))
""",
        "h6_fake_test",
        False,
    ),
    (
        "tools/ssh/authorized_keys",
        r"""{V}
{V2}
""",
        "h6_ssh_pub",
        False,
    ),
    (
        "services/pricing/keys/jwt-public.pem",
        r"""{V}
""",
        "h6_public_pem",
        False,
    ),
    (
        "services/ledgerd/certs/partner-root-ca.crt",
        r"""{V}
""",
        "h6_cert",
        False,
    ),
    (
        "services/ledgerd/tests/fixtures/cassettes/test_list_accounts.yaml",
        r"""interactions:
- request:
    body: null
    headers:
      Authorization: ['{V}']
    method: GET
    uri: https://api.openbanking.partnerbank.com/v3/accounts
  response:
    body: {string: '{"accounts": [{"id": "88120041"}]}'}
    status: {code: 200, message: OK}
version: 1
""",
        "h6_redacted",
        False,
    ),
    (
        "services/ledgerd/tests/fixtures/webhook_payload.json",
        r"""{
  "id": "{V}",
  "type": "statement.ready",
  "account_id": "{V2}",
  "created": 1710245644
}
""",
        "h6_uuid_id",
        False,
    ),
    (
        "db/seeds/001_demo_users.sql",
        r"""INSERT INTO users (email, password_hash, role) VALUES
  ('demo@acme-corp.io', '{V}', 'viewer'),
  ('qa@acme-corp.io', '{V2}', 'admin');
""",
        "h6_pw_hash",
        False,
    ),
    (
        "db/migrations/20240402120000_add_api_tokens.sql",
        r"""-- +goose Up
CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users(id),
    token_hash  char(64) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO api_tokens (id, owner_id, token_hash) VALUES ('{V}', 1, '{V2}');

-- +goose Down
DROP TABLE api_tokens;
""",
        "h6_sha256",
        False,
    ),
    (
        "services/notifications/db/migrate/20240301101500_add_webhook_secret_to_integrations.rb",
        r"""class AddWebhookSecretToIntegrations < ActiveRecord::Migration[7.1]
  def change
    add_column :integrations, :webhook_secret, :string, default: "{V}", null: false
  end
end
""",
        "h6_empty",
        False,
    ),
    (
        "docs/runbooks/rotate-db-password.md",
        r"""# Rotating the ledger DB password

1. Generate a new password: `openssl rand -base64 24`.
2. Store it: `vault kv put secret/ledgerd/prod db_password=-` (paste on stdin).
3. Update the app:

   ```
   kubectl -n ledger create secret generic ledgerd-db \
     --from-literal=password='{V}' --dry-run=client -o yaml | kubectl apply -f -
   ```
""",
        "h6_placeholder",
        False,
    ),
    (
        "docs/onboarding/aws-access.md",
        r"""## AWS CLI

Your `~/.aws/credentials` should look like this (values from the SSO portal, not these):

```ini
[acme-dev]
{V}
```
""",
        "h6_aws_doc_ini",
        False,
    ),
    (
        "docs/onboarding/local-databases.md",
        r"""## Connecting to a local database

Use the connection string format below, substituting your own values:

    {V}

Never paste real credentials into tickets.
""",
        "h6_example_uri",
        False,
    ),
    (
        "wiki/Security/Password-Policy.md",
        r"""# Password policy

* Minimum length: 14 characters.
* Error shown to users: "{V}"
* Lockout after 5 failures; the API returns `{V2}`.
""",
        "h6_error_code",
        False,
    ),
    (
        "wiki/Platform/Secrets.md",
        r"""# Where secrets live

| Service  | Secret              | Location |
|----------|---------------------|----------|
| ledgerd  | DB password         | {V} |
| pricing  | FX API key          | {V2} |
| shipping | DHL API key         | {V3} |
""",
        "h6_secret_ref",
        False,
    ),
    (
        "wiki/Integrations/Stripe.md",
        r"""# Stripe

The publishable key (safe for the frontend) is `{V}`.
The secret key is in Vault under `secret/storefront/stripe`.
""",
        "h6_stripe_pub",
        False,
    ),
    (
        "services/storefront-bff/test/auth.spec.ts",
        r"""import { describe, expect, it } from "vitest";
import { verify } from "../src/webhooks/verify";

describe("verify", () => {
  it("rejects a wrong signature", () => {
    process.env.WEBHOOK_SECRET = "{V}";
    expect(verify("{}", "00")).toBe(false);
  });
});
""",
        "h6_fake_test",
        False,
    ),
    (
        "services/catalog_ex/priv/gettext/fi/LC_MESSAGES/errors.po",
        r"""msgid "password is too short"
msgstr "{V}"

msgid "invalid token"
msgstr "Virheellinen tunniste"
""",
        "h6_i18n",
        False,
    ),
    (
        "services/ledgerd/go.sum",
        r"""github.com/google/uuid v1.6.0 {V}
github.com/google/uuid v1.6.0/go.mod {V2}
""",
        "h6_go_sum",
        False,
    ),
    (
        "services/pricing/internal/fx/testdata/fx_rates.json",
        r"""{
  "base": "EUR",
  "request_id": "{V}",
  "rates": {"USD": 1.0842, "GBP": 0.8571}
}
""",
        "h6_uuid_id",
        False,
    ),
    (
        "infra/gcp/oauth-client.json",
        r"""{
  "web": {
    "client_id": "{V}",
    "project_id": "acme-analytics-prod",
    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    "redirect_uris": ["https://analytics.acme-corp.io/oauth2/callback"]
  }
}
""",
        "h6_google_client_id",
        False,
    ),
]
