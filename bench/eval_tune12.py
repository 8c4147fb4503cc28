"""Twelfth blind-written part (``tune12``): written without reading the scanner, to be tuned on.

The 2020s application stack and what a developer leaves behind: AI/LLM provider keys and SDK
setups, LangChain/LlamaIndex configs, Next.js/Vercel/Supabase/Clerk/Resend/Upstash/Neon/
PlanetScale env files, Jupyter notebooks with printed outputs, shell and database client
history files, IDE run configurations, REST-client files, Terraform tfvars and Pulumi stack
configs, serverless/SAM templates, Dockerfiles, logs and crash dumps that printed a token,
Makefiles, Taskfiles, devcontainers and mobile app configs. Look-alikes use the same shapes.
Several values per file (``MULTI_SLOT``); every value of one template has the template's kind
and label.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import string
import uuid

import evalset
from evalset import ALNUM, B62, Template

MULTI_SLOT = True

URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"
LOWER_DIGITS = string.ascii_lowercase + string.digits


def _b62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(width, "0")


class Tune12Values(evalset.Values):
    """Value generators of the tune12 part: its own words and service users, and ``t12_``
    generators for the shapes of this part."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "axolotl",
            "pumpernickel",
            "fjord",
            "chartreuse",
            "wombat",
            "tiramisu",
            "nebula",
            "gazpacho",
            "marzipan",
        ]
        self.users = [
            "ragbot",
            "embedder",
            "vectorsync",
            "webhooks",
            "nextapp",
            "cronjobs",
            "notebook",
            "evals",
        ]

    # -- helpers ----------------------------------------------------------------------
    def _checksummed(self, prefix: str) -> str:
        body = self.s(30)
        return prefix + body + _b62(binascii.crc32(body.encode()), 6)

    def _jwt(self, claims: dict[str, object]) -> str:
        def enc(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        sig = base64.urlsafe_b64encode(self.rng.randbytes(32)).decode().rstrip("=")
        return enc({"alg": "HS256", "typ": "JWT"}) + "." + enc(claims) + "." + sig

    # -- positives --------------------------------------------------------------------
    def t12_word_pass(self) -> str:
        """A weak dictionary-word password as developers type it into a local setup."""
        return self.pick(self.words) + self.pick(["", "1", "123", "2025", "!", "_local", "99"])

    def t12_strong_pass(self) -> str:
        return self.s(self.rng.randrange(14, 24), ALNUM + "!#%^*-_+=")

    def t12_url_pass(self) -> str:
        """A password that needs no escaping inside a URI's userinfo."""
        if self.rng.random() < 0.3:
            return self.pick(self.words).capitalize() + str(self.rng.randrange(10, 999))
        return self.s(self.rng.randrange(16, 28), ALNUM)

    def t12_openai(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "sk-proj-" + self.s(74, URLSAFE) + "T3BlbkFJ" + self.s(74, URLSAFE)
        if shape == 1:
            return "sk-" + self.s(20) + "T3BlbkFJ" + self.s(20)
        if shape == 2:
            name = self.pick(self.users)
            return f"sk-svcacct-{name}-" + self.s(58, URLSAFE) + "T3BlbkFJ" + self.s(58, URLSAFE)
        return "sk-admin-" + self.s(64, URLSAFE) + "T3BlbkFJ" + self.s(64, URLSAFE)

    def t12_anthropic(self) -> str:
        kind = self.pick(["api03", "api03", "admin01"])
        return f"sk-ant-{kind}-" + self.s(93, URLSAFE) + "AA"

    def t12_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def t12_bare40(self) -> str:
        """Unprefixed 32-40 character keys (Cohere, Mistral, Weaviate, Expo, Vercel)."""
        return self.s(self.pick([32, 40, 40, 24]))

    def t12_replicate(self) -> str:
        return "r8_" + self.s(37)

    def t12_groq(self) -> str:
        return "gsk_" + self.s(52)

    def t12_pinecone(self) -> str:
        if self.rng.random() < 0.5:
            return "pcsk_" + self.s(5, LOWER_DIGITS) + "_" + self.s(63)
        return str(uuid.UUID(bytes=self.rng.randbytes(16), version=4))

    def t12_qdrant(self) -> str:
        return self.s(54, URLSAFE)

    def t12_langsmith(self) -> str:
        return "lsv2_" + self.pick(["pt", "sk"]) + "_" + self.s(32, HEX) + "_" + self.s(10, HEX)

    def t12_supabase_service(self) -> str:
        if self.rng.random() < 0.4:
            return "sb_secret_" + self.s(31, URLSAFE)
        ref = self.s(20, string.ascii_lowercase)
        iat = self.rng.randrange(1_690_000_000, 1_740_000_000)
        return self._jwt(
            {"iss": "supabase", "ref": ref, "role": "service_role", "iat": iat, "exp": iat + 10**9}
        )

    def t12_clerk_sk(self) -> str:
        return self.pick(["sk_live_", "sk_test_"]) + self.s(42)

    def t12_resend(self) -> str:
        return "re_" + self.s(8) + "_" + self.s(24)

    def t12_upstash(self) -> str:
        raw = b"\x01\x89 \x00" + self.rng.randbytes(44)
        return base64.b64encode(raw).decode().rstrip("=")

    def t12_planetscale(self) -> str:
        return self.pick(["pscale_pw_", "pscale_tkn_", "pscale_oauth_"]) + self.s(43, URLSAFE)

    def t12_vercel(self) -> str:
        if self.rng.random() < 0.5:
            return "vercel_blob_rw_" + self.s(16) + "_" + self.s(30)
        return self.s(24)

    def t12_session_secret(self) -> str:
        """NEXTAUTH_SECRET / AUTH_SECRET / cookie secrets: `openssl rand -base64 32`."""
        if self.rng.random() < 0.3:
            return self.rng.randbytes(32).hex()
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def t12_ghp(self) -> str:
        return self._checksummed(self.pick(["ghp_", "gho_", "ghs_"]))

    def t12_npm(self) -> str:
        return self._checksummed("npm_")

    def t12_aws_secret(self) -> str:
        return self.s(40, ALNUM + "+/")

    def t12_aws_id(self) -> str:
        return self.pick(["AKIA", "ASIA"]) + self.s(16, string.ascii_uppercase + "234567")

    def t12_stripe_sk(self) -> str:
        return (
            self.pick(["sk_live_", "rk_live_"])
            + self.s(24)
            + self.s(75)[: self.rng.choice([0, 75])]
        )

    def t12_jwt(self) -> str:
        iat = self.rng.randrange(1_700_000_000, 1_760_000_000)
        return self._jwt(
            {
                "sub": self.pick(self.users),
                "scope": "api:write",
                "iat": iat,
                "exp": iat + 86400 * 90,
            }
        )

    def t12_slack_hook(self) -> str:
        return (
            "https://hooks.slack.com/services/T"
            + self.s(10, string.ascii_uppercase + string.digits)
            + "/B"
            + self.s(10, string.ascii_uppercase + string.digits)
            + "/"
            + self.s(24)
        )

    def t12_discord_hook(self) -> str:
        return (
            "https://discord.com/api/webhooks/"
            + str(self.rng.randrange(10**17, 10**19))
            + "/"
            + self.s(68, URLSAFE)
        )

    def t12_basic(self) -> str:
        raw = f"{self.pick(self.users)}:{self.t12_url_pass()}"
        return base64.b64encode(raw.encode()).decode()

    def t12_pg_uri(self) -> str:
        user = self.pick(self.users)
        pw = self.t12_url_pass()
        shape = self.rng.randrange(4)
        if shape == 0:
            ep = (
                "ep-"
                + "-".join(self.pick(self.words) for _ in range(2))
                + "-"
                + self.s(8, LOWER_DIGITS)
            )
            return f"postgresql://{user}:npg_{self.s(12)}@{ep}.us-east-2.aws.neon.tech/neondb?sslmode=require"
        if shape == 1:
            ref = self.s(20, string.ascii_lowercase)
            return f"postgresql://postgres.{ref}:{pw}@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
        if shape == 2:
            return f"mysql://{user}:pscale_pw_{self.s(43, URLSAFE)}@aws.connect.psdb.cloud/{user}?sslaccept=strict"
        host = self.pick(["db.internal", "10.0.3.17", "pg-main.prod.svc", "localhost"])
        return f"postgres://{user}:{pw}@{host}:5432/{user}_db"

    def t12_redis_uri(self) -> str:
        host = self.pick(self.words) + "-" + str(self.rng.randrange(10000, 99999)) + ".upstash.io"
        return f"rediss://default:{self.s(34)}@{host}:6379"

    def t12_private_key(self) -> str:
        raw = b"\x30\x82\x04\xbd\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"
        body = base64.b64encode(raw + self.rng.randbytes(1190)).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----"

    def t12_expo(self) -> str:
        return self.s(40, URLSAFE)

    # -- look-alikes --------------------------------------------------------------------
    def t12_placeholder(self) -> str:
        return self.pick(
            [
                "<your-api-key>",
                "sk-...",
                "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "YOUR_API_KEY_HERE",
                "changeme",
                "hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "replace-me",
                "<REPLACE_WITH_TOKEN>",
                "sk-ant-api03-XXXXXXXXXXXXXXXXXXXX",
                "TODO",
                "dummy",
                "your-secret-here",
                "xxxxxxxx",
                "sk_test_XXXXXXXXXXXXXXXXXXXXXXXX",
                "********",
            ]
        )

    def t12_env_ref(self) -> str:
        name = self.pick(
            [
                "OPENAI_API_KEY",
                "ANTHROPIC_API_KEY",
                "HF_TOKEN",
                "GROQ_API_KEY",
                "DATABASE_URL",
                "CLERK_SECRET_KEY",
                "RESEND_API_KEY",
                "PINECONE_API_KEY",
            ]
        )
        return self.pick(
            [
                "${" + name + "}",
                "$" + name,
                "${{ secrets." + name + " }}",
                "{{ env." + name + " }}",
                "${env:" + name + "}",
                "%" + name + "%",
                "${ssm:/prod/" + name.lower() + "}",
                "{{ .Env." + name + " }}",
            ]
        )

    def t12_masked(self) -> str:
        """A key as dashboards and SDK logs print it: prefix, stars, last four."""
        return (
            self.pick(["sk-proj-", "sk-ant-api03-", "hf_", "gsk_", "re_", "sk_live_", "r8_"])
            + self.pick(["****", "...", "*" * 20, "…", "********************"])
            + self.s(4)
        )

    def t12_public_id(self) -> str:
        """Identifiers that grant nothing: publishable keys, org/project/team ids."""
        shape = self.rng.randrange(7)
        if shape == 0:
            host = (
                self.pick(self.words)
                + "-"
                + self.pick(self.words)
                + "-"
                + str(self.rng.randrange(10, 99))
            )
            return "pk_test_" + base64.b64encode(
                f"{host}.clerk.accounts.dev$".encode()
            ).decode().rstrip("=")
        if shape == 1:
            return "org-" + self.s(24)
        if shape == 2:
            return "prj_" + self.s(28)
        if shape == 3:
            return "team_" + self.s(24)
        if shape == 4:
            return "phc_" + self.s(43)
        if shape == 5:
            return "pk_live_" + self.s(99)
        return "proj_" + self.s(24)

    def t12_model(self) -> str:
        return self.pick(
            [
                "gpt-4o-mini",
                "gpt-4.1-2025-04-14",
                "claude-3-5-sonnet-20241022",
                "claude-sonnet-4-20250514",
                "mistral-large-latest",
                "llama-3.1-70b-versatile",
                "sentence-transformers/all-MiniLM-L6-v2",
                "text-embedding-3-large",
                "meta-llama/Meta-Llama-3-8B-Instruct",
                "command-r-plus",
                "BAAI/bge-small-en-v1.5",
            ]
        )

    def t12_hash(self) -> str:
        shape = self.rng.randrange(4)
        raw = self.rng.randbytes(64)
        if shape == 0:
            return "sha256:" + hashlib.sha256(raw).hexdigest()
        if shape == 1:
            return "sha512-" + base64.b64encode(hashlib.sha512(raw).digest()).decode()
        if shape == 2:
            return hashlib.sha1(raw).hexdigest()
        return hashlib.sha256(raw).hexdigest()

    def t12_uuid(self) -> str:
        return str(uuid.UUID(bytes=self.rng.randbytes(16), version=4))

    def t12_secret_ref(self) -> str:
        name = self.pick(self.users)
        acct = str(self.rng.randrange(10**11, 10**12))
        return self.pick(
            [
                f"arn:aws:secretsmanager:us-east-1:{acct}:secret:{name}/openai-{self.s(6)}",
                f"op://Engineering/{name}-anthropic/credential",
                f"vault:secret/data/{name}#api_key",
                f"projects/{self.pick(self.words)}-prod/secrets/{name}-openai/versions/latest",
                f"arn:aws:ssm:eu-west-1:{acct}:parameter/{name}/HF_TOKEN",
                f"doppler://{name}/prd/OPENAI_API_KEY",
            ]
        )

    def t12_pulumi_secure(self) -> str:
        return (
            "v1:"
            + base64.b64encode(self.rng.randbytes(12)).decode()
            + ":"
            + base64.b64encode(self.rng.randbytes(self.rng.randrange(40, 90))).decode()
        )

    def t12_sops(self) -> str:
        return (
            "ENC[AES256_GCM,data:"
            + base64.b64encode(self.rng.randbytes(self.rng.randrange(24, 60))).decode()
            + ",iv:"
            + base64.b64encode(self.rng.randbytes(32)).decode()
            + ",tag:"
            + base64.b64encode(self.rng.randbytes(16)).decode()
            + ",type:str]"
        )

    def t12_example_uri(self) -> str:
        host = self.pick(["db.example.com", "postgres.test", "localhost.invalid", "example.org"])
        pw = self.pick(["password", "<password>", "PASSWORD", "secret", "[YOUR-PASSWORD]", "****"])
        user = self.pick(["user", "postgres", "USER", "johndoe"])
        return f"postgresql://{user}:{pw}@{host}:5432/mydb"

    def t12_ui_text(self) -> str:
        return self.pick(
            [
                "Enter your OpenAI API key",
                "API key is invalid or has been revoked",
                "Password must be at least 12 characters",
                "Paste your Hugging Face access token",
                "Your secret key will only be shown once",
                "Incorrect API key provided",
                "Token expired, please sign in again",
                "Show password",
            ]
        )

    def t12_error_code(self) -> str:
        return self.pick(
            [
                "invalid_api_key",
                "authentication_error",
                "insufficient_quota",
                "rate_limit_exceeded",
                "permission_denied",
                "invalid_request_error",
                "ERR_INVALID_TOKEN",
                "UNAUTHENTICATED",
            ]
        )

    def t12_ssh_pub(self) -> str:
        raw = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        return (
            "ssh-ed25519 "
            + base64.b64encode(raw).decode()
            + " "
            + self.pick(self.users)
            + "@devbox"
        )

    def t12_cert(self) -> str:
        raw = b"\x30\x82\x03\x5a\x30\x82\x02\x42\xa0\x03\x02\x01\x02" + self.rng.randbytes(620)
        body = base64.b64encode(raw).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----"

    def t12_empty(self) -> str:
        return ""

    def t12_aws_example(self) -> str:
        return self.pick(["AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"])


VALUES = Tune12Values

TEMPLATES: list[Template] = [
    # ---------------------------------------------------------------- AI provider keys
    (
        ".env.local",
        """# local only -- do not commit (lol)
NEXT_PUBLIC_APP_URL=http://localhost:3000
OPENAI_API_KEY={V}
OPENAI_MODEL=gpt-4o-mini
EMBEDDINGS_DIM=1536
""",
        "t12_openai",
        True,
    ),
    (
        "notebooks/rag_eval.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "id": "3f1c2a7e",
   "metadata": {},
   "outputs": [],
   "source": [
    "import os\\n",
    "os.environ[\\"OPENAI_API_KEY\\"] = \\"{V}\\"\\n",
    "from openai import OpenAI\\n",
    "client = OpenAI()"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_openai",
        True,
    ),
    (
        "notebooks/claude_smoke.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 4,
   "metadata": {},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": [
      "Message(id='msg_01XkT', content=[TextBlock(text='Hello!', type='text')], model='claude-3-5-sonnet-20241022')\\n"
     ]
    }
   ],
   "source": [
    "import anthropic\\n",
    "client = anthropic.Anthropic(api_key=\\"{V}\\")\\n",
    "print(client.messages.create(model=\\"claude-3-5-sonnet-20241022\\", max_tokens=64, messages=[{\\"role\\": \\"user\\", \\"content\\": \\"hi\\"}]))"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_anthropic",
        True,
    ),
    (
        "notebooks/finetune.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 7,
   "metadata": {},
   "outputs": [
    {
     "data": {
      "text/plain": [
       "{'PATH': '/usr/local/bin:/usr/bin',\\n",
       " 'HOME': '/root',\\n",
       " 'HF_TOKEN': '{V}',\\n",
       " 'CUDA_VISIBLE_DEVICES': '0'}"
      ]
     },
     "execution_count": 7,
     "metadata": {},
     "output_type": "execute_result"
    }
   ],
   "source": [
    "dict(os.environ)"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_hf",
        True,
    ),
    (
        "home/.bash_history",
        """cd ~/code/chatbot
source .venv/bin/activate
export ANTHROPIC_API_KEY={V}
python -m chatbot.cli --model claude-3-5-haiku-latest
curl https://api.anthropic.com/v1/messages -H "x-api-key: {V2}" -H "anthropic-version: 2023-06-01" -H "content-type: application/json" -d @req.json
git status
""",
        "t12_anthropic",
        True,
    ),
    (
        "home/.zsh_history",
        """: 1718123456:0;pip install -U huggingface_hub
: 1718123470:0;huggingface-cli login --token {V}
: 1718123512:0;huggingface-cli download meta-llama/Meta-Llama-3-8B-Instruct --local-dir ./llama3
: 1718123901:0;nvidia-smi
: 1718124420:0;export HF_TOKEN={V2}
""",
        "t12_hf",
        True,
    ),
    (
        "src/lib/llm.ts",
        """import Groq from "groq-sdk";

// TODO move to env before launch
const groq = new Groq({ apiKey: "{V}" });

export async function summarize(text: string) {
  const res = await groq.chat.completions.create({
    model: "llama-3.1-8b-instant",
    messages: [{ role: "user", content: `Summarize: ${text}` }],
  });
  return res.choices[0]?.message?.content ?? "";
}
""",
        "t12_groq",
        True,
    ),
    (
        "app/imagegen.py",
        """import replicate

client = replicate.Client(api_token="{V}")


def generate(prompt: str) -> str:
    out = client.run("black-forest-labs/flux-schnell", input={"prompt": prompt})
    return str(out[0])
""",
        "t12_replicate",
        True,
    ),
    (
        "config/langchain.yaml",
        """llm:
  provider: openai
  model: gpt-4o
  temperature: 0.2
  api_key: {V}
retriever:
  k: 6
  search_type: mmr
""",
        "t12_openai",
        True,
    ),
    (
        "rag/vectorstore.py",
        """from pinecone import Pinecone, ServerlessSpec

pc = Pinecone(api_key="{V}")
INDEX = "docs-prod"

if INDEX not in pc.list_indexes().names():
    pc.create_index(INDEX, dimension=1536, metric="cosine", spec=ServerlessSpec(cloud="aws", region="us-east-1"))
index = pc.Index(INDEX)
""",
        "t12_pinecone",
        True,
    ),
    (
        "rag/weaviate_client.py",
        """import weaviate
from weaviate.classes.init import Auth

client = weaviate.connect_to_weaviate_cloud(
    cluster_url="https://rag-demo-x1y2z3.c0.europe-west3.gcp.weaviate.cloud",
    auth_credentials=Auth.api_key("{V}"),
)
""",
        "t12_bare40",
        True,
    ),
    (
        "src/search/qdrant.ts",
        """import { QdrantClient } from "@qdrant/js-client-rest";

export const qdrant = new QdrantClient({
  url: "https://4f1e0d2a-7b3c.eu-central.aws.cloud.qdrant.io:6333",
  apiKey: "{V}",
});
""",
        "t12_qdrant",
        True,
    ),
    (
        "services/rerank.py",
        """import cohere

co = cohere.ClientV2("{V}")


def rerank(query, docs):
    return co.rerank(model="rerank-v3.5", query=query, documents=docs, top_n=5)
""",
        "t12_bare40",
        True,
    ),
    (
        "cmd/mistral/main.go",
        """package main

import (
\t"fmt"

\tmistral "github.com/gage-technologies/mistral-go"
)

func main() {
\tclient := mistral.NewMistralClientDefault("{V}")
\tres, err := client.Chat("mistral-small-latest", []mistral.ChatMessage{{Content: "ping", Role: mistral.RoleUser}}, nil)
\tif err != nil {
\t\tpanic(err)
\t}
\tfmt.Println(res.Choices[0].Message.Content)
}
""",
        "t12_bare40",
        True,
    ),
    (
        "agent/.env",
        """LANGCHAIN_TRACING_V2=true
LANGCHAIN_ENDPOINT=https://api.smith.langchain.com
LANGCHAIN_API_KEY={V}
LANGSMITH_API_KEY={V2}
LANGCHAIN_PROJECT=support-agent
""",
        "t12_langsmith",
        True,
    ),
    (
        ".vscode/launch.json",
        """{
  "version": "0.2.0",
  "configurations": [
    {
      "name": "Python: FastAPI",
      "type": "debugpy",
      "request": "launch",
      "module": "uvicorn",
      "args": ["app.main:app", "--reload"],
      "env": {
        "OPENAI_API_KEY": "{V}",
        "LOG_LEVEL": "debug"
      },
      "jinja": true
    }
  ]
}
""",
        "t12_openai",
        True,
    ),
    (
        ".vscode/settings.json",
        """{
  "editor.formatOnSave": true,
  "python.defaultInterpreterPath": ".venv/bin/python",
  "claude-dev.anthropicApiKey": "{V}",
  "files.exclude": { "**/__pycache__": true }
}
""",
        "t12_anthropic",
        True,
    ),
    (
        ".idea/workspace.xml",
        """<?xml version="1.0" encoding="UTF-8"?>
<project version="4">
  <component name="RunManager" selected="Python.server">
    <configuration name="server" type="PythonConfigurationType" factoryName="Python">
      <module name="chat-api" />
      <option name="INTERPRETER_OPTIONS" value="" />
      <envs>
        <env name="PYTHONUNBUFFERED" value="1" />
        <env name="GROQ_API_KEY" value="{V}" />
      </envs>
      <option name="SCRIPT_NAME" value="$PROJECT_DIR$/server.py" />
    </configuration>
  </component>
</project>
""",
        "t12_groq",
        True,
    ),
    (
        "http/openai.http",
        """### list models
GET https://api.openai.com/v1/models
Authorization: Bearer {V}

### chat
POST https://api.openai.com/v1/chat/completions
Authorization: Bearer {V2}
Content-Type: application/json

{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
""",
        "t12_openai",
        True,
    ),
    (
        "api/claude.rest",
        """POST https://api.anthropic.com/v1/messages HTTP/1.1
x-api-key: {V}
anthropic-version: 2023-06-01
content-type: application/json

{
  "model": "claude-3-5-haiku-latest",
  "max_tokens": 256,
  "messages": [{"role": "user", "content": "Say hi"}]
}
""",
        "t12_anthropic",
        True,
    ),
    (
        "bruno/inference/Generate.bru",
        """meta {
  name: Generate
  type: http
  seq: 2
}

post {
  url: https://api-inference.huggingface.co/models/mistralai/Mistral-7B-Instruct-v0.3
  body: json
  auth: bearer
}

auth:bearer {
  token: {V}
}

body:json {
  {"inputs": "Hello"}
}
""",
        "t12_hf",
        True,
    ),
    (
        "insomnia/export.json",
        """{
  "_type": "export",
  "__export_format": 4,
  "resources": [
    {
      "_id": "req_4b1f",
      "_type": "request",
      "method": "POST",
      "url": "https://api.replicate.com/v1/predictions",
      "headers": [
        { "name": "Authorization", "value": "Bearer {V}" },
        { "name": "Content-Type", "value": "application/json" }
      ],
      "name": "Create prediction"
    }
  ]
}
""",
        "t12_replicate",
        True,
    ),
    (
        "logs/api-2024-11-02.log",
        """2024-11-02 10:14:07,118 DEBUG httpcore.connection: connect_tcp.started host='api.openai.com' port=443
2024-11-02 10:14:07,203 DEBUG openai._base_client: Request options: {'method': 'post', 'url': '/chat/completions', 'headers': {'Authorization': 'Bearer {V}', 'OpenAI-Organization': None}}
2024-11-02 10:14:08,771 INFO httpx: HTTP Request: POST https://api.openai.com/v1/chat/completions "HTTP/1.1 200 OK"
""",
        "t12_openai",
        True,
    ),
    (
        "crash/traceback-worker-3.txt",
        """Traceback (most recent call last):
  File "/srv/app/worker.py", line 88, in handle
    reply = summarize(job.payload)
  File "/srv/app/llm.py", line 31, in summarize
    resp = client.messages.create(**kwargs)
    locals:
      api_key = '{V}'
      kwargs = {'model': 'claude-3-5-sonnet-latest', 'max_tokens': 1024}
anthropic.RateLimitError: Error code: 429 - {'type': 'error', 'error': {'type': 'rate_limit_error'}}
""",
        "t12_anthropic",
        True,
    ),
    (
        "Dockerfile",
        """FROM python:3.12-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 \\
    HF_HOME=/models \\
    HF_TOKEN={V}
COPY requirements.txt .
RUN pip install -r requirements.txt && python -c "from huggingface_hub import snapshot_download; snapshot_download('BAAI/bge-small-en-v1.5')"
COPY . .
CMD ["python", "serve.py"]
""",
        "t12_hf",
        True,
    ),
    (
        "docker/api.Dockerfile",
        """FROM node:20-alpine AS build
ARG OPENAI_API_KEY={V}
ENV OPENAI_API_KEY=$OPENAI_API_KEY
WORKDIR /app
COPY . .
RUN npm ci && npm run build
""",
        "t12_openai",
        True,
    ),
    (
        ".devcontainer/devcontainer.json",
        """// Format details: https://aka.ms/devcontainer.json
{
  "name": "agents",
  "image": "mcr.microsoft.com/devcontainers/python:3.12",
  "containerEnv": {
    "ANTHROPIC_API_KEY": "{V}"
  },
  "postCreateCommand": "pip install -e .[dev]",
  "customizations": { "vscode": { "extensions": ["ms-python.python"] } }
}
""",
        "t12_anthropic",
        True,
    ),
    (
        "Makefile",
        """GROQ_API_KEY ?= {V}
GROQ_API_KEY_EVAL ?= {V2}
PY := .venv/bin/python

.PHONY: run eval
run:
\tGROQ_API_KEY=$(GROQ_API_KEY) $(PY) -m bot

eval:
\t$(PY) -m evals.run --provider groq
""",
        "t12_groq",
        True,
    ),
    (
        "Taskfile.yml",
        """version: '3'

env:
  REPLICATE_API_TOKEN: {V}
  REPLICATE_API_TOKEN_BATCH: {V2}

tasks:
  gen:
    cmds:
      - python scripts/gen_thumbnails.py --out public/thumbs
""",
        "t12_replicate",
        True,
    ),
    (
        "serverless.yml",
        """service: summarizer
frameworkVersion: '3'

provider:
  name: aws
  runtime: python3.12
  region: eu-west-1
  environment:
    OPENAI_API_KEY: {V}
    STAGE: ${sls:stage}

functions:
  summarize:
    handler: handler.summarize
    events:
      - httpApi: 'POST /summarize'
""",
        "t12_openai",
        True,
    ),
    (
        "sam/template.yaml",
        """AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 30
    Environment:
      Variables:
        PINECONE_API_KEY: {V}
        PINECONE_INDEX: kb-prod
Resources:
  IngestFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ingest/
      Handler: app.handler
      Runtime: python3.12
""",
        "t12_pinecone",
        True,
    ),
    (
        "infra/prod.tfvars",
        """region          = "us-east-1"
environment     = "prod"
openai_api_key  = "{V}"
openai_fallback_key = "{V2}"
desired_count   = 3
""",
        "t12_openai",
        True,
    ),
    (
        "infra/Pulumi.dev.yaml",
        """config:
  aws:region: eu-central-1
  chat:anthropicKey: {V}
  chat:instanceType: t3.small
""",
        "t12_anthropic",
        True,
    ),
    (
        "mobile/app.json",
        """{
  "expo": {
    "name": "PocketTutor",
    "slug": "pocket-tutor",
    "version": "1.4.0",
    "ios": { "bundleIdentifier": "com.pockettutor.app" },
    "extra": {
      "openaiApiKey": "{V}",
      "openaiAdminKey": "{V2}"
    }
  }
}
""",
        "t12_openai",
        True,
    ),
    (
        "ios/PocketTutor/Info.plist",
        """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
\t<key>CFBundleDisplayName</key>
\t<string>PocketTutor</string>
\t<key>OpenAIAPIKey</key>
\t<string>{V}</string>
\t<key>UILaunchStoryboardName</key>
\t<string>LaunchScreen</string>
</dict>
</plist>
""",
        "t12_openai",
        True,
    ),
    (
        "android/gradle.properties",
        """org.gradle.jvmargs=-Xmx2048m -Dfile.encoding=UTF-8
android.useAndroidX=true
MYAPP_UPLOAD_STORE_FILE=my-upload-key.keystore
MYAPP_UPLOAD_KEY_ALIAS=my-key-alias
MYAPP_UPLOAD_STORE_PASSWORD={V}
MYAPP_UPLOAD_KEY_PASSWORD={V2}
""",
        "t12_strong_pass",
        True,
    ),
    (
        "android/app/build.gradle.kts",
        r"""android {
    namespace = "com.example.chat"
    defaultConfig {
        applicationId = "com.example.chat"
        minSdk = 26
        buildConfigField("String", "GROQ_KEY", "\"{V}\"")
    }
    buildFeatures { buildConfig = true }
}
""",
        "t12_groq",
        True,
    ),
    # ------------------------------------------------------- Next.js / serverless SaaS stack
    (
        "web/.env.local",
        """NEXT_PUBLIC_CLERK_SIGN_IN_URL=/sign-in
NEXT_PUBLIC_CLERK_SIGN_UP_URL=/sign-up
CLERK_SECRET_KEY={V}
# staging instance
# CLERK_SECRET_KEY={V2}
""",
        "t12_clerk_sk",
        True,
    ),
    (
        "web/.env.production",
        """# Resend
RESEND_API_KEY={V}
EMAIL_FROM="Acme <noreply@acme.dev>"
""",
        "t12_resend",
        True,
    ),
    (
        "web/lib/email.ts",
        """import { Resend } from "resend";

export const resend = new Resend("{V}");

export async function sendMagicLink(to: string, url: string) {
  return resend.emails.send({ from: "login@acme.dev", to, subject: "Sign in", html: `<a href="${url}">Sign in</a>` });
}
""",
        "t12_resend",
        True,
    ),
    (
        "web/.env",
        """UPSTASH_REDIS_REST_URL="https://eu1-gentle-wombat-38211.upstash.io"
UPSTASH_REDIS_REST_TOKEN="{V}"
""",
        "t12_upstash",
        True,
    ),
    (
        "web/lib/ratelimit.ts",
        """import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";

const redis = new Redis({
  url: "https://usw1-fjord-40417.upstash.io",
  token: "{V}",
});

export const ratelimit = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(10, "10 s") });
""",
        "t12_upstash",
        True,
    ),
    (
        "prisma/.env",
        """# Environment variables declared in this file are automatically made available to Prisma.
DATABASE_URL="{V}"
DIRECT_URL="{V2}"
""",
        "t12_pg_uri",
        True,
    ),
    (
        "drizzle.config.ts",
        """import { defineConfig } from "drizzle-kit";

export default defineConfig({
  schema: "./src/db/schema.ts",
  out: "./drizzle",
  dialect: "postgresql",
  dbCredentials: {
    url: "{V}",
  },
});
""",
        "t12_pg_uri",
        True,
    ),
    (
        "apps/admin/.env.local",
        """NEXT_PUBLIC_SUPABASE_URL=https://qwertyuiopasdfghjklz.supabase.co
SUPABASE_SERVICE_ROLE_KEY={V}
# old project, remove after migration
SUPABASE_SERVICE_ROLE_KEY_LEGACY={V2}
""",
        "t12_supabase_service",
        True,
    ),
    (
        "supabase/functions/_shared/admin.ts",
        """import { createClient } from "https://esm.sh/@supabase/supabase-js@2";

export const admin = createClient(
  Deno.env.get("SUPABASE_URL") ?? "",
  "{V}",
  { auth: { persistSession: false } },
);
""",
        "t12_supabase_service",
        True,
    ),
    (
        "web/.env.development.local",
        """NEXTAUTH_URL=http://localhost:3000
NEXTAUTH_SECRET={V}
AUTH_SECRET={V2}
AUTH_TRUST_HOST=true
""",
        "t12_session_secret",
        True,
    ),
    (
        "web/.env.vercel",
        """# Created by Vercel CLI
BLOB_READ_WRITE_TOKEN="{V}"
VERCEL_ENV="development"
""",
        "t12_vercel",
        True,
    ),
    (
        "scripts/deploy.sh",
        """#!/usr/bin/env bash
set -euo pipefail
npm run build
npx vercel deploy --prod --yes --token {V}
""",
        "t12_vercel",
        True,
    ),
    (
        "services/billing/.env",
        """PLANETSCALE_ORG=acme
PLANETSCALE_SERVICE_TOKEN_ID=xk3v9q2m1c
PLANETSCALE_SERVICE_TOKEN={V}
""",
        "t12_planetscale",
        True,
    ),
    (
        "web/.env.local",
        """STRIPE_SECRET_KEY={V}
#STRIPE_SECRET_KEY={V2}
NEXT_PUBLIC_SITE_URL=http://localhost:3000
""",
        "t12_stripe_sk",
        True,
    ),
    (
        "web/.env.local",
        """CLERK_WEBHOOK_SECRET=whsec_{V}
""",
        "t12_session_secret",
        True,
    ),
    (
        "apps/api/wrangler.toml",
        """name = "chat-edge"
main = "src/index.ts"
compatibility_date = "2024-09-23"

[vars]
OPENAI_API_KEY = "{V}"
ALLOWED_ORIGIN = "https://chat.acme.dev"
""",
        "t12_openai",
        True,
    ),
    (
        "apps/api/.dev.vars",
        """ANTHROPIC_API_KEY={V}
ANTHROPIC_API_KEY_EVALS={V2}
""",
        "t12_anthropic",
        True,
    ),
    (
        ".streamlit/secrets.toml",
        """OPENAI_API_KEY = "{V}"

[connections.postgresql]
dialect = "postgresql"
""",
        "t12_openai",
        True,
    ),
    (
        "claude_desktop_config.json",
        """{
  "mcpServers": {
    "github": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {
        "GITHUB_PERSONAL_ACCESS_TOKEN": "{V}"
      }
    }
  }
}
""",
        "t12_ghp",
        True,
    ),
    (
        ".cursor/mcp.json",
        """{
  "mcpServers": {
    "pinecone": {
      "command": "npx",
      "args": ["-y", "@pinecone-database/mcp"],
      "env": { "PINECONE_API_KEY": "{V}" }
    }
  }
}
""",
        "t12_pinecone",
        True,
    ),
    (
        ".aider.conf.yml",
        """model: sonnet
anthropic-api-key: {V}
auto-commits: false
dark-mode: true
""",
        "t12_anthropic",
        True,
    ),
    (
        ".continue/config.json",
        """{
  "models": [
    {
      "title": "Codestral",
      "provider": "mistral",
      "model": "codestral-latest",
      "apiKey": "{V}"
    }
  ],
  "allowAnonymousTelemetry": false
}
""",
        "t12_bare40",
        True,
    ),
    (
        "ingest/.env",
        """LLAMA_CLOUD_API_KEY=llx-{V}
LLAMA_PARSE_RESULT_TYPE=markdown
""",
        "t12_bare40",
        True,
    ),
    (
        "web/.env.example",
        """# copy to .env and fill in
GROQ_API_KEY={V}
NEXT_PUBLIC_APP_NAME=quickchat
""",
        "t12_groq",
        True,
    ),
    (
        "mobile/.env",
        """EXPO_TOKEN={V}
EXPO_PUBLIC_API_URL=https://api.pockettutor.app
""",
        "t12_expo",
        True,
    ),
    (
        "infra/Pulumi.prod.yaml",
        """config:
  neon:apiKey: {V}
  app:region: aws-us-east-2
""",
        "t12_bare40",
        True,
    ),
    # --------------------------------------------------------------- shell and db history
    (
        "home/.psql_history",
        r"""\dt
select count(*) from documents;
ALTER USER ragbot WITH PASSWORD '{V}';
\q
""",
        "t12_strong_pass",
        True,
    ),
    (
        "home/.psql_history",
        r"""\c vectors
CREATE EXTENSION IF NOT EXISTS vector;
CREATE ROLE embedder LOGIN PASSWORD '{V}';
GRANT ALL ON SCHEMA public TO embedder;
""",
        "t12_word_pass",
        True,
    ),
    (
        "home/.mysql_history",
        r"""_HiStOrY_V2_
show\040databases;
CREATE\040USER\040'webhooks'@'%'\040IDENTIFIED\040BY\040'{V}';
GRANT\040ALL\040PRIVILEGES\040ON\040app.*\040TO\040'webhooks'@'%';
""",
        "t12_word_pass",
        True,
    ),
    (
        "home/.bash_history",
        """ls -la
psql "{V}"
pg_dump -Fc -f backup.dump "{V2}"
""",
        "t12_pg_uri",
        True,
    ),
    (
        "home/.zsh_history",
        """: 1720000001:0;brew install redis
: 1720000044:0;redis-cli -u {V} --tls ping
: 1720000090:0;exit
""",
        "t12_redis_uri",
        True,
    ),
    (
        "home/.bash_history",
        """git clone https://{V}@github.com/acme/private-evals.git
cd private-evals
make setup
""",
        "t12_ghp",
        True,
    ),
    (
        "home/.bash_history",
        """npm whoami
npm config set //registry.npmjs.org/:_authToken={V}
npm publish --access public
""",
        "t12_npm",
        True,
    ),
    (
        "home/.bash_history",
        """export AWS_ACCESS_KEY_ID=$(cat ~/keyid)
export AWS_SECRET_ACCESS_KEY={V}
aws configure set aws_secret_access_key {V2} --profile bedrock
aws bedrock list-foundation-models --region us-east-1 --profile bedrock
""",
        "t12_aws_secret",
        True,
    ),
    (
        "home/.zsh_history",
        """: 1721000000:0;OPENAI_API_KEY={V} python scripts/eval.py --n 200
: 1721000342:0;open results.html
""",
        "t12_openai",
        True,
    ),
    (
        "home/.python_history",
        """import openai
openai.api_key = "{V}"
openai.models.list()
exit()
""",
        "t12_openai",
        True,
    ),
    (
        "home/.node_repl_history",
        """.exit
await c.messages.create({model: 'claude-3-5-haiku-latest', max_tokens: 50, messages: [{role: 'user', content: 'hi'}]})
const c = new Anthropic({apiKey: '{V}'})
const Anthropic = require('@anthropic-ai/sdk')
""",
        "t12_anthropic",
        True,
    ),
    # ---------------------------------------------------------------- IDE / REST clients
    (
        ".idea/dataSources.local.xml",
        """<?xml version="1.0" encoding="UTF-8"?>
<project version="4">
  <component name="dataSourceStorageLocal" created-in="PY-241.15989.155">
    <data-source name="prod@db.internal" uuid="1b7b0c7a-0b9c-4a53-9d8e-22b61e1d3d11">
      <database-info product="PostgreSQL" version="16.2" jdbc-version="4.2" driver-name="PostgreSQL JDBC Driver" />
      <jdbc-url>jdbc:postgresql://db.internal:5432/app?user=cronjobs&amp;password={V}</jdbc-url>
      <secret-storage>master_key</secret-storage>
    </data-source>
  </component>
</project>
""",
        "t12_url_pass",
        True,
    ),
    (
        ".idea/runConfigurations/dev_server.xml",
        """<component name="ProjectRunConfigurationManager">
  <configuration default="false" name="dev server" type="NodeJSConfigurationType" path-to-js-file="server.js" working-dir="$PROJECT_DIR$">
    <envs>
      <env name="DB_USER" value="nextapp" />
      <env name="DB_PASSWORD" value="{V}" />
    </envs>
    <method v="2" />
  </configuration>
</component>
""",
        "t12_word_pass",
        True,
    ),
    (
        ".vscode/settings.json",
        """{
  "sqltools.connections": [
    {
      "previewLimit": 50,
      "server": "localhost",
      "port": 5432,
      "driver": "PostgreSQL",
      "name": "local",
      "database": "app",
      "username": "notebook",
      "password": "{V}"
    }
  ]
}
""",
        "t12_word_pass",
        True,
    ),
    (
        ".vscode/launch.json",
        """{
  "configurations": [
    {
      "type": "node",
      "request": "launch",
      "name": "Next: server",
      "runtimeExecutable": "npm",
      "runtimeArgs": ["run", "dev"],
      "env": { "DATABASE_URL": "{V}" }
    }
  ]
}
""",
        "t12_pg_uri",
        True,
    ),
    (
        "http/internal.http",
        """@host = https://admin.acme.dev
@token = {V}

GET {{host}}/api/users
Authorization: Bearer {{token}}
""",
        "t12_jwt",
        True,
    ),
    (
        "http/legacy.http",
        """GET https://jenkins.acme.dev/api/json
Authorization: Basic {V}
Accept: application/json
""",
        "t12_basic",
        True,
    ),
    (
        "bruno/environments/Production.bru",
        """vars {
  baseUrl: https://api.acme.dev
  apiKey: {V}
  adminKey: {V2}
}
""",
        "t12_resend",
        True,
    ),
    # ------------------------------------------------------------- logs, IaC, mobile, misc
    (
        "logs/worker.log",
        """[2024-10-11T08:00:01Z] INFO  booting worker pid=4121
[2024-10-11T08:00:01Z] INFO  Connecting to Redis at {V}
[2024-10-11T08:00:02Z] INFO  queue "embeddings" ready
""",
        "t12_redis_uri",
        True,
    ),
    (
        "logs/crash-2024-09-30.json",
        """{"level":"error","time":"2024-09-30T21:44:03.118Z","msg":"upstream call failed","err":{"name":"AxiosError","code":"ERR_BAD_REQUEST","config":{"method":"post","url":"https://api.resend.com/emails","headers":{"Accept":"application/json","Authorization":"Bearer {V}"}}}}
""",
        "t12_resend",
        True,
    ),
    (
        "logs/gateway.jsonl",
        """{"ts":"2024-12-01T10:00:00Z","route":"/v1/chat","status":502,"upstream":"anthropic","req_headers":{"x-api-key":"{V}","anthropic-version":"2023-06-01"}}
""",
        "t12_anthropic",
        True,
    ),
    (
        "Taskfile.yml",
        """version: '3'
tasks:
  seed:
    desc: load fixtures into the shared dev db
    cmds:
      - psql "{V}" -f db/seed.sql
""",
        "t12_pg_uri",
        True,
    ),
    (
        "Makefile",
        """IMAGE := ghcr.io/acme/rag-api

push:
\techo {V} | docker login ghcr.io -u acme-bot --password-stdin
\tdocker push $(IMAGE):latest
""",
        "t12_ghp",
        True,
    ),
    (
        "Makefile",
        """notify:
\tcurl -s -X POST -H 'Content-type: application/json' --data '{"text":"deploy done"}' {V}
""",
        "t12_slack_hook",
        True,
    ),
    (
        "scripts/notify.py",
        """import requests

DISCORD_WEBHOOK = "{V}"


def post(msg: str) -> None:
    requests.post(DISCORD_WEBHOOK, json={"content": msg}, timeout=5)
""",
        "t12_discord_hook",
        True,
    ),
    (
        "functions/serverless.yml",
        """service: ingest
provider:
  name: aws
  runtime: nodejs20.x
  environment:
    DB_HOST: ingest.cluster-c9x.eu-west-1.rds.amazonaws.com
    DB_USER: vectorsync
    DB_PASSWORD: {V}
    MIGRATOR_PASSWORD: {V2}
""",
        "t12_strong_pass",
        True,
    ),
    (
        "samconfig.toml",
        """version = 0.1
[default.deploy.parameters]
stack_name = "summarizer"
region = "us-east-1"
capabilities = "CAPABILITY_IAM"
parameter_overrides = "Stage=prod OpenAiApiKey={V}"
""",
        "t12_openai",
        True,
    ),
    (
        "docker/web.Dockerfile",
        """FROM node:20-alpine
WORKDIR /app
COPY package*.json ./
RUN echo "//registry.npmjs.org/:_authToken={V}" > .npmrc && npm ci && rm .npmrc
COPY . .
""",
        "t12_npm",
        True,
    ),
    (
        "infra/terraform.tfvars",
        """planetscale_org           = "acme"
planetscale_service_token = "{V}"
""",
        "t12_planetscale",
        True,
    ),
    (
        "infra/secrets.auto.tfvars",
        """aws_region     = "us-west-2"
aws_secret_key = "{V}"
""",
        "t12_aws_secret",
        True,
    ),
    (
        "infra/github.tfvars",
        """github_app_id = 912345
github_app_private_key = <<-EOT
  {IV}
  EOT
""",
        "t12_private_key",
        True,
    ),
    (
        "infra/Pulumi.staging.yaml",
        """config:
  app:deployKey: |
    {IV}
  app:replicas: "2"
""",
        "t12_private_key",
        True,
    ),
    (
        "ios/keys/AuthKey_7KQ2M3.p8",
        """{V}
""",
        "t12_private_key",
        True,
    ),
    (
        "notebooks/scratch.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [],
   "source": [
    "%env OPENAI_API_KEY={V}\\n",
    "%load_ext autoreload"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_openai",
        True,
    ),
    (
        "notebooks/hub_push.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": [
      "Token is valid (permission: write).\\n",
      "Login successful\\n"
     ]
    }
   ],
   "source": [
    "from huggingface_hub import login\\n",
    "login(token=\\"{V}\\")"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_hf",
        True,
    ),
    (
        "notebooks/db_explore.ipynb",
        """{
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
      "DATABASE_URL={V}\\n",
      "LOG_LEVEL=info\\n"
     ]
    }
   ],
   "source": [
    "!cat ../.env"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_pg_uri",
        True,
    ),
    (
        "notebooks/groq_bench.py",
        """# %% [markdown]
# Latency benchmark for Groq vs. local vLLM

# %%
from groq import Groq

client = Groq(api_key="{V}")
""",
        "t12_groq",
        True,
    ),
    (
        "flutter_app/android/key.properties",
        """storePassword={V}
keyPassword={V2}
keyAlias=upload
storeFile=/Users/dev/upload-keystore.jks
""",
        "t12_word_pass",
        True,
    ),
    (
        "fastlane/.env",
        """FASTLANE_USER=dev@acme.dev
FASTLANE_PASSWORD={V}
MATCH_PASSWORD={V2}
""",
        "t12_strong_pass",
        True,
    ),
    (
        ".devcontainer/devcontainer.json",
        """{
  "name": "monorepo",
  "build": { "dockerfile": "Dockerfile" },
  "remoteEnv": {
    "GITHUB_TOKEN": "{V}",
    "PNPM_HOME": "/home/node/.pnpm"
  }
}
""",
        "t12_ghp",
        True,
    ),
    (
        "web/.env.test",
        """DATABASE_URL={V}
SHADOW_DATABASE_URL={V2}
REDIS_URL=redis://localhost:6379
""",
        "t12_pg_uri",
        True,
    ),
    (
        "app/config/settings.py",
        """from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    openai_api_key: str = "{V}"
    embedding_model: str = "text-embedding-3-small"
    chunk_size: int = 800


settings = Settings()
""",
        "t12_openai",
        True,
    ),
    (
        "app/llama_setup.py",
        """from llama_index.core import Settings
from llama_index.llms.anthropic import Anthropic

Settings.llm = Anthropic(model="claude-3-5-sonnet-20241022", api_key="{V}")
Settings.chunk_size = 512
""",
        "t12_anthropic",
        True,
    ),
    # =================================================================== look-alikes
    (
        ".env.example",
        """# Copy to .env.local and fill in your own keys
OPENAI_API_KEY={V}
ANTHROPIC_API_KEY={V2}
NEXT_PUBLIC_APP_URL=http://localhost:3000
""",
        "t12_placeholder",
        False,
    ),
    (
        "web/.env.local.example",
        """CLERK_SECRET_KEY={V}
RESEND_API_KEY={V2}
UPSTASH_REDIS_REST_TOKEN={V3}
""",
        "t12_empty",
        False,
    ),
    (
        "notebooks/quickstart.ipynb",
        """{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": [
    "## Setup\\n",
    "Set your key below or export it in your shell."
   ]
  },
  {
   "cell_type": "code",
   "execution_count": null,
   "metadata": {},
   "outputs": [],
   "source": [
    "client = OpenAI(api_key=\\"{V}\\")"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_placeholder",
        False,
    ),
    (
        "notebooks/check_keys.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 5,
   "metadata": {},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": [
      "Using key {V}\\n"
     ]
    }
   ],
   "source": [
    "print(f\\"Using key {mask(os.environ['OPENAI_API_KEY'])}\\")"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_masked",
        False,
    ),
    (
        "logs/proxy-access.log",
        """10.0.4.2 - - [12/Oct/2024:09:12:44 +0000] "POST /v1/chat/completions HTTP/1.1" 200 1882 auth="Bearer {V}"
10.0.4.2 - - [12/Oct/2024:09:12:51 +0000] "POST /v1/embeddings HTTP/1.1" 200 40211 auth="Bearer [REDACTED]"
""",
        "t12_masked",
        False,
    ),
    (
        "web/.env.local",
        """NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY={V}
NEXT_PUBLIC_POSTHOG_KEY=${POSTHOG_KEY}
NEXT_PUBLIC_POSTHOG_HOST=https://eu.i.posthog.com
""",
        "t12_public_id",
        False,
    ),
    (
        "app/openai_client.py",
        """from openai import OpenAI

# key comes from OPENAI_API_KEY; org/project only route billing
client = OpenAI(organization="{V}", project="{V2}")
""",
        "t12_public_id",
        False,
    ),
    (
        ".vercel/project.json",
        """{"projectId":"{V}","orgId":"{V2}","settings":{"framework":"nextjs"}}
""",
        "t12_public_id",
        False,
    ),
    (
        "rag/.env",
        """OPENAI_MODEL={V}
EMBEDDING_MODEL={V2}
RERANK_TOP_N=5
""",
        "t12_model",
        False,
    ),
    (
        "config/llm.yaml",
        """llm:
  provider: anthropic
  model: {V}
  api_key: ${ANTHROPIC_API_KEY}
  max_tokens: 2048
fallback:
  model: {V2}
""",
        "t12_model",
        False,
    ),
    (
        "serverless.yml",
        """service: chat-api
provider:
  name: aws
  runtime: python3.12
  environment:
    OPENAI_API_KEY: {V}
    GROQ_API_KEY: ${ssm:/chat/groq_api_key}
""",
        "t12_env_ref",
        False,
    ),
    (
        "sam/template.yaml",
        """Resources:
  ChatFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Runtime: python3.12
      Environment:
        Variables:
          OPENAI_KEY_SECRET: {V}
      Policies:
        - AWSSecretsManagerGetSecretValuePolicy:
            SecretArn: {V2}
""",
        "t12_secret_ref",
        False,
    ),
    (
        "infra/prod.tfvars",
        """environment            = "prod"
openai_key_secret_path = "{V}"
""",
        "t12_secret_ref",
        False,
    ),
    (
        "infra/Pulumi.prod.yaml",
        """config:
  aws:region: us-east-1
  chat:openaiKey:
    secure: {V}
  chat:dbPassword:
    secure: {V2}
""",
        "t12_pulumi_secure",
        False,
    ),
    (
        "infra/Pulumi.yaml.stack",
        """encryptionsalt: {V}
config:
  app:replicas: "3"
""",
        "t12_pulumi_secure",
        False,
    ),
    (
        "secrets/prod.enc.yaml",
        """OPENAI_API_KEY: {V}
DATABASE_URL: {V2}
sops:
    kms:
        - arn: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
    lastmodified: "2024-10-02T11:21:04Z"
    version: 3.9.0
""",
        "t12_sops",
        False,
    ),
    (
        "package-lock.json",
        """{
  "name": "web",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/openai": {
      "version": "4.67.3",
      "resolved": "https://registry.npmjs.org/openai/-/openai-4.67.3.tgz",
      "integrity": "{V}"
    },
    "node_modules/@anthropic-ai/sdk": {
      "version": "0.30.1",
      "license": "MIT"
    }
  }
}
""",
        "t12_hash",
        False,
    ),
    (
        "notebooks/analysis.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "id": "{V}",
   "metadata": {},
   "outputs": [],
   "source": ["import pandas as pd"]
  },
  {
   "cell_type": "code",
   "execution_count": 2,
   "id": "{V2}",
   "metadata": {},
   "outputs": [],
   "source": ["df = pd.read_parquet('runs.parquet')"]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_uuid",
        False,
    ),
    (
        "logs/api-errors.log",
        """2024-11-03T12:00:01Z WARN openai 401 invalid_api_key request_id={V}
2024-11-03T12:00:09Z WARN openai 429 rate_limit_exceeded request_id={V2}
""",
        "t12_uuid",
        False,
    ),
    (
        "web/messages/en.json",
        """{
  "settings": {
    "apiKeyLabel": "{V}",
    "apiKeyHelp": "Find it in your dashboard",
    "save": "Save"
  }
}
""",
        "t12_ui_text",
        False,
    ),
    (
        "web/lib/errors.ts",
        """export function isAuthError(err: { code?: string }) {
  return err.code === "{V}" || err.code === "{V2}";
}
""",
        "t12_error_code",
        False,
    ),
    (
        "http/openai.http",
        """@apiKey = {V}

GET https://api.openai.com/v1/models
Authorization: Bearer {{apiKey}}
""",
        "t12_env_ref",
        False,
    ),
    (
        "bruno/collection/Chat.bru",
        """post {
  url: {{baseUrl}}/v1/chat/completions
  auth: bearer
}

auth:bearer {
  token: {V}
}
""",
        "t12_env_ref",
        False,
    ),
    (
        "insomnia/export.json",
        """{
  "_type": "export",
  "resources": [
    {
      "_type": "environment",
      "name": "Base Environment",
      "data": { "anthropic_key": "{V}", "base_url": "https://api.anthropic.com" }
    }
  ]
}
""",
        "t12_placeholder",
        False,
    ),
    (
        ".vscode/launch.json",
        """{
  "configurations": [
    {
      "name": "Agent",
      "type": "debugpy",
      "request": "launch",
      "program": "${workspaceFolder}/agent/main.py",
      "envFile": "${workspaceFolder}/.env",
      "env": { "ANTHROPIC_API_KEY": "{V}" }
    }
  ]
}
""",
        "t12_env_ref",
        False,
    ),
    (
        ".devcontainer/devcontainer.json",
        """{
  "name": "rag",
  "image": "mcr.microsoft.com/devcontainers/python:3.12",
  "remoteEnv": { "OPENAI_API_KEY": "${localEnv:OPENAI_API_KEY}", "HF_TOKEN": "{V}" }
}
""",
        "t12_env_ref",
        False,
    ),
    (
        "Makefile",
        """OPENAI_API_KEY ?= {V}

check-env:
ifeq ($(OPENAI_API_KEY),)
\t$(error OPENAI_API_KEY is not set)
endif
""",
        "t12_empty",
        False,
    ),
    (
        "Taskfile.yml",
        """version: '3'
dotenv: ['.env']
env:
  HF_TOKEN: '{V}'
tasks:
  pull: huggingface-cli download BAAI/bge-m3
""",
        "t12_env_ref",
        False,
    ),
    (
        "Dockerfile",
        """FROM python:3.12-slim
ARG HF_TOKEN
ENV HF_TOKEN={V}
RUN --mount=type=secret,id=openai python warmup.py
""",
        "t12_env_ref",
        False,
    ),
    (
        "ios/App/Info.plist",
        """<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0">
<dict>
\t<key>OpenAIAPIKey</key>
\t<string>{V}</string>
\t<key>NSFaceIDUsageDescription</key>
\t<string>{V2}</string>
</dict>
</plist>
""",
        "t12_placeholder",
        False,
    ),
    (
        "ios/App/Config.xcconfig",
        """// Set OPENAI_API_KEY in Secrets.xcconfig (git-ignored)
#include? "Secrets.xcconfig"
OPENAI_API_KEY = {V}
""",
        "t12_env_ref",
        False,
    ),
    (
        "mobile/app.json",
        """{
  "expo": {
    "name": "PocketTutor",
    "owner": "acme",
    "updates": { "url": "https://u.expo.dev/{V}" },
    "extra": { "eas": { "projectId": "{V2}" } }
  }
}
""",
        "t12_uuid",
        False,
    ),
    (
        "android/gradle.properties",
        """org.gradle.jvmargs=-Xmx4g
MYAPP_UPLOAD_STORE_FILE=my-upload-key.keystore
MYAPP_UPLOAD_STORE_PASSWORD={V}
MYAPP_UPLOAD_KEY_PASSWORD={V2}
""",
        "t12_placeholder",
        False,
    ),
    (
        "home/.bash_history",
        """export OPENAI_API_KEY=$(op read "{V}")
python -m evals.run
""",
        "t12_secret_ref",
        False,
    ),
    (
        "home/.zsh_history",
        """: 1722000000:0;ssh-keygen -t ed25519 -C devbox
: 1722000031:0;echo "{V}" >> ~/.ssh/authorized_keys
""",
        "t12_ssh_pub",
        False,
    ),
    (
        "home/.psql_history",
        """SELECT id, user_id FROM api_keys WHERE key_hash = '{V}';
SELECT now();
""",
        "t12_hash",
        False,
    ),
    (
        "home/.mysql_history",
        r"""_HiStOrY_V2_
select\040*\040from\040sessions\040where\040id='{V}';
""",
        "t12_uuid",
        False,
    ),
    (
        "home/.bash_history",
        """curl https://api.groq.com/openai/v1/models -H "Authorization: Bearer {V}"
""",
        "t12_env_ref",
        False,
    ),
    (
        "ios/certs/AppleWWDRCAG3.pem",
        """{V}
""",
        "t12_cert",
        False,
    ),
    (
        "infra/certs.tfvars",
        """ca_cert = <<-EOT
  {IV}
  EOT
""",
        "t12_cert",
        False,
    ),
    (
        "apps/api/.env.example",
        """DATABASE_URL={V}
DIRECT_URL={V2}
""",
        "t12_example_uri",
        False,
    ),
    (
        "docs/setup.md",
        """## Database

Create a Postgres database and put its connection string in `.env`:

```
DATABASE_URL="{V}"
```
""",
        "t12_example_uri",
        False,
    ),
    (
        ".env.sample",
        """AWS_ACCESS_KEY_ID={V}
AWS_REGION=us-east-1
""",
        "t12_aws_example",
        False,
    ),
    (
        "notebooks/errors.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [
    {
     "ename": "AuthenticationError",
     "evalue": "Error code: 401 - {'error': {'message': 'Incorrect API key provided: {V}. You can find your API key at https://platform.openai.com/account/api-keys.', 'type': 'invalid_request_error', 'code': 'invalid_api_key'}}",
     "output_type": "error",
     "traceback": []
    }
   ],
   "source": ["client.models.list()"]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_masked",
        False,
    ),
    (
        "logs/boot.log",
        """2024-10-01 09:00:00 INFO Loaded OPENAI_API_KEY from {V}
2024-10-01 09:00:00 INFO Loaded HF_TOKEN from environment
""",
        "t12_secret_ref",
        False,
    ),
    (
        "web/lib/ai.ts",
        """export const apiKey = process.env.OPENAI_API_KEY ?? "{V}";
if (!apiKey) console.warn("OPENAI_API_KEY missing; AI features disabled");
""",
        "t12_empty",
        False,
    ),
    (
        "web/.env.test",
        """RESEND_API_KEY={V}
CLERK_SECRET_KEY={V2}
""",
        "t12_placeholder",
        False,
    ),
    (
        "web/components/ApiKeyForm.tsx",
        """export function ApiKeyForm() {
  return (
    <form>
      <label htmlFor="key">{t("settings.apiKey")}</label>
      <input id="key" type="password" placeholder="{V}" autoComplete="off" />
    </form>
  );
}
""",
        "t12_ui_text",
        False,
    ),
    (
        "api/openapi.yaml",
        """components:
  securitySchemes:
    ApiKeyAuth:
      type: apiKey
      in: header
      name: x-api-key
      description: {V}
""",
        "t12_ui_text",
        False,
    ),
    (
        ".vscode/settings.json",
        """{
  "sqltools.connections": [
    {
      "driver": "PostgreSQL",
      "name": "staging",
      "server": "staging-db.internal",
      "username": "readonly",
      "askForPassword": true,
      "password": "{V}"
    }
  ]
}
""",
        "t12_empty",
        False,
    ),
    (
        ".idea/dataSources.xml",
        """<?xml version="1.0" encoding="UTF-8"?>
<project version="4">
  <component name="DataSourceManagerImpl" format="xml" multifile-model="true">
    <data-source source="LOCAL" name="docs db" uuid="9d4f4d1e-3c5b-4a6c-8f1e-6d0c2b1a9e77">
      <driver-ref>postgresql</driver-ref>
      <jdbc-driver>org.postgresql.Driver</jdbc-driver>
      <jdbc-url>jdbc:{V}</jdbc-url>
    </data-source>
  </component>
</project>
""",
        "t12_example_uri",
        False,
    ),
    (
        "pnpm-lock.yaml",
        """lockfileVersion: '9.0'
packages:
  groq-sdk@0.7.0:
    resolution: {integrity: {V}}
  resend@4.0.0:
    engines: {node: '>=18'}
""",
        "t12_hash",
        False,
    ),
    (
        "uv.lock",
        """[[package]]
name = "anthropic"
version = "0.39.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/anthropic-0.39.0.tar.gz", hash = "{V}" }
""",
        "t12_hash",
        False,
    ),
    (
        "rag/.env",
        """QDRANT_URL=http://localhost:6333
QDRANT_COLLECTION_ID={V}
""",
        "t12_uuid",
        False,
    ),
    (
        "rag/weaviate_schema.json",
        """{
  "class": "Document",
  "vectorizer": "text2vec-openai",
  "moduleConfig": { "text2vec-openai": { "model": "{V}" } }
}
""",
        "t12_model",
        False,
    ),
    (
        "models/adapter/config.json",
        """{
  "_name_or_path": "{V}",
  "architectures": ["LlamaForCausalLM"],
  "torch_dtype": "bfloat16"
}
""",
        "t12_model",
        False,
    ),
    (
        "supabase/config.toml",
        """[studio]
enabled = true
port = 54323
openai_api_key = "{V}"

[auth]
site_url = "http://127.0.0.1:3000"
""",
        "t12_env_ref",
        False,
    ),
    (
        "logs/worker.log",
        """[2024-10-11T08:05:00Z] ERROR anthropic call failed error_code={V} retry_in=30s
""",
        "t12_error_code",
        False,
    ),
    (
        "tests/fixtures/openai_401.json",
        """{"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": null, "code": "{V}"}}
""",
        "t12_error_code",
        False,
    ),
    (
        "logs/crash-2024-10-05.json",
        """{"level":"error","msg":"request failed","config":{"url":"https://api.resend.com/emails","headers":{"Authorization":"{V}"}}}
""",
        "t12_masked",
        False,
    ),
    (
        "Makefile",
        """build:
\tdocker build --build-arg HF_TOKEN={V} -t rag-api .
""",
        "t12_env_ref",
        False,
    ),
    (
        "android/local.properties.example",
        """sdk.dir=/Users/you/Library/Android/sdk
android.injected.signing.store.password={V}
""",
        "t12_placeholder",
        False,
    ),
    (
        "ios/App/en.lproj/Localizable.strings",
        """"settings.apikey.title" = "{V}";
"settings.apikey.error" = "That key did not work.";
""",
        "t12_ui_text",
        False,
    ),
    (
        "notebooks/interactive.ipynb",
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [
    {"name": "stdin", "output_type": "stream", "text": ["{V}: ··········\\n"]}
   ],
   "source": [
    "from getpass import getpass\\n",
    "os.environ['OPENAI_API_KEY'] = getpass('{V}: ')"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_ui_text",
        False,
    ),
    (
        "infra/variables.tfvars",
        """# openai_api_key is set via TF_VAR_openai_api_key in CI
openai_api_key = "{V}"
""",
        "t12_empty",
        False,
    ),
    (
        "infra/devbox.tfvars",
        """instance_type  = "g5.xlarge"
ssh_public_key = "{V}"
""",
        "t12_ssh_pub",
        False,
    ),
    (
        "notebooks/README_cells.ipynb",
        """{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": [
    "Before running, export your key:\\n",
    "```bash\\n",
    "export ANTHROPIC_API_KEY='{V}'\\n",
    "```"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t12_placeholder",
        False,
    ),
    (
        "notebooks/download.py",
        """from huggingface_hub import hf_hub_download

path = hf_hub_download(repo_id="{V}", filename="config.json")
""",
        "t12_model",
        False,
    ),
    (
        "Dockerfile.gpu",
        """FROM nvidia/cuda:12.4.1-runtime-ubuntu22.04
# model weights checksum
ENV WEIGHTS_SHA={V}
""",
        "t12_hash",
        False,
    ),
    (
        "web/.env",
        """# real values live in Vercel; `vercel env pull` overwrites this file
OPENAI_API_KEY={V}
DATABASE_URL=
""",
        "t12_env_ref",
        False,
    ),
    (
        "docs/vercel-env.md",
        """| Name | Value |
| --- | --- |
| `CLERK_SECRET_KEY` | `{V}` |
| `RESEND_API_KEY` | `{V2}` |
""",
        "t12_placeholder",
        False,
    ),
    (
        "web/.env.production",
        """NEXT_PUBLIC_STRIPE_PUBLISHABLE_KEY={V}
""",
        "t12_public_id",
        False,
    ),
    (
        "fastlane/.env.default",
        """FASTLANE_USER=dev@acme.dev
MATCH_PASSWORD={V}
""",
        "t12_env_ref",
        False,
    ),
    (
        "flutter_app/android/key.properties.example",
        """storePassword={V}
keyPassword={V2}
keyAlias=upload
""",
        "t12_placeholder",
        False,
    ),
    (
        "logs/app.log",
        """2024-12-02 14:03:11 INFO resend: email queued id={V}
""",
        "t12_uuid",
        False,
    ),
    (
        "crash/minidump-summary.txt",
        """Process: ChatApp [4412]
Exception Type: EXC_BAD_ACCESS (SIGSEGV)
Binary UUID: {V}
Thread 0 Crashed:: Dispatch queue: com.apple.main-thread
""",
        "t12_uuid",
        False,
    ),
    (
        "docs/troubleshooting.md",
        """### `{V}`

The key was rejected. Generate a new key in the dashboard and update `.env.local`.
""",
        "t12_error_code",
        False,
    ),
    (
        "serverless.yml",
        """service: rag
provider:
  name: aws
  environment:
    PINECONE_API_KEY: ${ssm:/rag/prod/pinecone_api_key}
    OPENAI_KEY_ARN: {V}
""",
        "t12_secret_ref",
        False,
    ),
    (
        "scripts/rotate.sh",
        """#!/usr/bin/env bash
# prints the new key's fingerprint, never the key
echo "new key fingerprint: {V}"
""",
        "t12_hash",
        False,
    ),
    (
        "web/.env.local",
        """OPENAI_API_KEY={V}
# ^ paste yours, see README
""",
        "t12_placeholder",
        False,
    ),
    (
        "app/config/settings.py",
        """from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    anthropic_api_key: str = "{V}"
    openai_api_key: str = "{V2}"
""",
        "t12_empty",
        False,
    ),
    (
        "sops/.env.enc",
        """RESEND_API_KEY={V}
sops_version=3.9.0
""",
        "t12_sops",
        False,
    ),
]
