"""The OpenAPI 3.1 description of ``/``, ``/api/`` and ``/v1/`` (served at /api/openapi.json, shown at /api/docs)."""

from __future__ import annotations

from copy import deepcopy

from flask import request


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, example=None) -> dict:
    media = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _error(description: str) -> dict:
    return {"description": description, "content": _json(_ref("Error"))}


BEARER = [{"bearer": []}]
PROVIDER_QUERY = {
    "name": "provider",
    "in": "query",
    "schema": {"type": "string"},
    "description": "A provider name: echo, openai, gemini, inhouse, litellm or a plugin's.",
}

COMMON_ERRORS = {
    "400": _error("Invalid request (the message says what to fix)."),
    "401": _error("Missing, invalid, expired or revoked token or API key, or a disabled account."),
}
COMPLETION_ERRORS = {
    **COMMON_ERRORS,
    "403": _error("The model is not available to this account."),
    "404": _error("Unknown model, or one the provider does not offer."),
    "429": {
        **_error(
            "Rate limited (code limit_exceeded), or a monthly spending budget is used up (code and type "
            "insufficient_quota; the message says which budget and when it resets); retry after the "
            "Retry-After header's seconds."
        ),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    "503": _error("The job queue or the model's provider is unavailable."),
}

CHAT_BODY = {
    "required": True,
    "content": _json(
        _ref("ChatCompletionRequest"),
        {
            "model": "gpt-3.5-turbo",
            "messages": [{"role": "user", "content": "How is the weather on Venus?"}],
            "stream": False,
        },
    ),
}
CHAT_RESPONSES = {
    "200": {
        "description": 'A `chat.completion` object, or with `"stream": true` Server-Sent Events of '
        "`chat.completion.chunk` objects ending with `data: [DONE]`.",
        "content": {
            **_json(_ref("ChatCompletion")),
            "text/event-stream": {
                "schema": {"type": "string"},
                "example": 'data: {"object": "chat.completion.chunk", ...}\n\ndata: [DONE]\n\n',
            },
        },
    },
    **COMPLETION_ERRORS,
}

SPEC = {
    "openapi": "3.1.0",
    "info": {
        "title": "Switchboard API",
        "version": "1.0.0",
        "description": "The LLM service API (signup, JSON Web Tokens, supported models, chat completions) and an "
        "OpenAI-compatible API under /v1 for the `openai` SDK, litellm and other OpenAI clients. "
        "Authenticate with `Authorization: Bearer <access token or sb- API key>`; cookies are "
        'never accepted. Errors are `{"error": {"message", "type", "code"}}`.',
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An access token from POST /api/token/ (a JWT) or a "
                "personal API key (sb-...) from the settings page.",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["message", "type", "code"],
                        "properties": {
                            "message": {"type": "string"},
                            "type": {"type": "string"},
                            "code": {"type": ["string", "null"]},
                        },
                    }
                },
            },
            "Message": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}},
            "Credentials": {
                "type": "object",
                "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
            },
            "TokenPair": {
                "type": "object",
                "required": ["access", "refresh"],
                "properties": {"access": {"type": "string"}, "refresh": {"type": "string"}},
            },
            "Refresh": {"type": "object", "required": ["refresh"], "properties": {"refresh": {"type": "string"}}},
            "UsageReport": {
                "type": "object",
                "description": "The caller's own usage; a null budget or limit means unlimited. Dollars are "
                "estimates at the models' prices (docs/teams.md).",
                "required": ["user", "groups", "month", "pool", "today", "requests_per_minute", "by_model", "by_day"],
                "properties": {
                    "user": {"type": "string"},
                    "groups": {"type": "array", "items": {"type": "string"}},
                    "month": {
                        "type": "object",
                        "properties": {
                            "month": {"type": "string", "examples": ["2026-12"]},
                            "requests": {"type": "integer"},
                            "input_tokens": {"type": "integer"},
                            "output_tokens": {"type": "integer"},
                            "cost": {"type": "number"},
                            "cost_complete": {"type": "boolean"},
                            "budget": {"type": ["number", "null"]},
                            "resets_at": {"type": "string", "format": "date-time"},
                        },
                    },
                    "pool": {
                        "type": ["object", "null"],
                        "description": "The primary group's pooled limits and this month's spending charged to it.",
                        "properties": {
                            "group": {"type": "string"},
                            "cost": {"type": "number"},
                            "budget": {"type": ["number", "null"]},
                            "tokens_per_day": {"type": ["integer", "null"]},
                            "requests_per_minute": {"type": ["integer", "null"]},
                        },
                    },
                    "today": {
                        "type": "object",
                        "properties": {
                            "day": {"type": "string"},
                            "tokens": {"type": "integer"},
                            "limit": {"type": ["integer", "null"]},
                            "resets_at": {"type": "string", "format": "date-time"},
                        },
                    },
                    "requests_per_minute": {"type": ["integer", "null"]},
                    "by_model": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "model": {"type": "string"},
                                "provider": {"type": "string"},
                                "requests": {"type": "integer"},
                                "input_tokens": {"type": "integer"},
                                "output_tokens": {"type": "integer"},
                                "cost": {"type": ["number", "null"]},
                                "cost_complete": {"type": "boolean"},
                            },
                        },
                    },
                    "by_day": {
                        "type": "array",
                        "description": "The last 30 days, oldest first.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "day": {"type": "string"},
                                "requests": {"type": "integer"},
                                "tokens": {"type": "integer"},
                                "cost": {"type": "number"},
                            },
                        },
                    },
                },
            },
            "SupportedModels": {
                "type": "object",
                "required": ["models"],
                "properties": {"models": {"type": "array", "items": {"type": "string"}}},
            },
            "ContentPart": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
                    },
                    {
                        "type": "object",
                        "required": ["type", "image_url"],
                        "properties": {
                            "type": {"const": "image_url"},
                            "image_url": {
                                "type": "object",
                                "required": ["url"],
                                "properties": {
                                    "url": {
                                        "type": "string",
                                        "description": "data:image/png;base64,... or an http(s) URL",
                                    },
                                    "detail": {"type": "string"},
                                },
                            },
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type", "file"],
                        "properties": {
                            "type": {"const": "file"},
                            "file": {
                                "type": "object",
                                "required": ["file_data"],
                                "properties": {
                                    "file_data": {
                                        "type": "string",
                                        "description": "base64, or a data:application/pdf;base64,... URL",
                                    },
                                    "filename": {"type": "string"},
                                },
                            },
                        },
                    },
                ]
            },
            "ChatMessage": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["system", "developer", "user", "assistant"]},
                    "content": {
                        "description": (
                            "Text, or OpenAI's content parts. In user messages: `image_url` (a base64 data URL "
                            "or an http(s) URL, fetched by the server within size and time limits) and `file` "
                            "(base64 `file_data`, for PDFs). Types are read from the bytes: PNG, JPEG, WebP, GIF, "
                            "PDF. Errors are 400s: `model_not_multimodal` (an image for a text-only model), "
                            "`file_too_large`, `unsupported_file_type`, `url_not_fetchable`, `invalid_content`."
                        ),
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": _ref("ContentPart")},
                        ],
                    },
                },
            },
            "ChatCompletionRequest": {
                "type": "object",
                "required": ["model", "messages"],
                "properties": {
                    "model": {"type": "string", "description": "A Switchboard model id or alias."},
                    "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
                    "stream": {"type": "boolean", "default": False},
                    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
                    "temperature": {"type": "number"},
                    "top_p": {"type": "number"},
                    "max_tokens": {"type": "integer"},
                    "max_completion_tokens": {"type": "integer"},
                    "frequency_penalty": {"type": "number"},
                    "presence_penalty": {"type": "number"},
                    "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "seed": {"type": "integer"},
                    "n": {"const": 1},
                },
                "additionalProperties": True,
            },
            "Usage": {
                "type": "object",
                "properties": {
                    "prompt_tokens": {"type": "integer"},
                    "completion_tokens": {"type": "integer"},
                    "total_tokens": {"type": "integer"},
                },
            },
            "ChatCompletion": {
                "type": "object",
                "required": ["id", "object", "created", "model", "choices", "usage"],
                "properties": {
                    "id": {"type": "string"},
                    "object": {"const": "chat.completion"},
                    "created": {"type": "integer"},
                    "model": {"type": "string"},
                    "choices": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "index": {"type": "integer"},
                                "finish_reason": {"type": "string"},
                                "message": {
                                    "type": "object",
                                    "properties": {"role": {"const": "assistant"}, "content": {"type": "string"}},
                                },
                            },
                        },
                    },
                    "usage": _ref("Usage"),
                },
            },
            "Model": {
                "type": "object",
                "required": ["id", "object", "owned_by"],
                "properties": {
                    "id": {"type": "string"},
                    "object": {"const": "model"},
                    "created": {"type": "integer"},
                    "owned_by": {"type": "string", "description": "The provider."},
                    "alias_of": {"type": "string", "description": "For an alias: the model id it names."},
                },
            },
            "ModelList": {
                "type": "object",
                "required": ["object", "data"],
                "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
            },
        },
    },
    "paths": {
        "/": {
            "get": {
                "summary": "Welcome",
                "tags": ["LLM service API"],
                "security": [],
                "description": "JSON for API clients (curl's `Accept: */*`); browsers asking for HTML get the web app.",
                "responses": {
                    "200": {
                        "description": "The welcome message.",
                        "content": _json(_ref("Message"), {"message": "Welcome to the LLM API!"}),
                    }
                },
            }
        },
        "/api/signup/": {
            "post": {
                "summary": "Create a user",
                "tags": ["LLM service API"],
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": _json(_ref("Credentials"), {"username": "charming_user", "password": "secure_pwd"}),
                },
                "responses": {
                    "201": {
                        "description": "Created.",
                        "content": _json(_ref("Message"), {"message": "User created successfully"}),
                    },
                    "400": _error(
                        "A taken username, a missing field or a weak password; besides `error`, each "
                        "field with a problem is a key with a list of messages."
                    ),
                },
            }
        },
        "/api/token/": {
            "post": {
                "summary": "Get an access and a refresh token",
                "tags": ["LLM service API"],
                "security": [],
                "requestBody": {"required": True, "content": _json(_ref("Credentials"))},
                "responses": {
                    "200": {"description": "Two JSON Web Tokens (HS256).", "content": _json(_ref("TokenPair"))},
                    **COMMON_ERRORS,
                    "429": COMPLETION_ERRORS["429"],
                },
            }
        },
        "/api/token/refresh/": {
            "post": {
                "summary": "Get a new access token (and a new refresh token)",
                "tags": ["LLM service API"],
                "security": [],
                "description": "Refresh tokens rotate: the answer carries a new `refresh` token and the one sent is "
                "retired. Sending a retired refresh token again answers 401 and revokes every token "
                "of that sign-in (the whole family, from one `POST /api/token/`): sign in again.",
                "requestBody": {"required": True, "content": _json(_ref("Refresh"))},
                "responses": {
                    "200": {
                        "description": "A new access token and the refresh token to use next time.",
                        "content": _json(_ref("TokenPair")),
                    },
                    **COMMON_ERRORS,
                },
            }
        },
        "/api/usage/": {
            "get": {
                "summary": "Your usage and budgets",
                "tags": ["LLM service API"],
                "security": BEARER,
                "description": "This month's spending and tokens against your monthly budget and your primary "
                "group's pooled budget, today's tokens against your daily limit, a breakdown by model and "
                "the last 30 days. A bearer token or an API key.",
                "responses": {
                    "200": {"description": "Your usage.", "content": _json(_ref("UsageReport"))},
                    "401": COMMON_ERRORS["401"],
                },
            }
        },
        "/api/supported-models/": {
            "get": {
                "summary": "Models a provider supports",
                "tags": ["LLM service API"],
                "security": BEARER,
                "parameters": [{**PROVIDER_QUERY, "required": True}],
                "responses": {
                    "200": {
                        "description": "The provider's models.",
                        "content": _json(_ref("SupportedModels"), {"models": ["gemini-pro", "gemini-pro-vision"]}),
                    },
                    **COMMON_ERRORS,
                    "503": _error("The provider (e.g. the in-house server) is unavailable."),
                },
            }
        },
        "/api/chat/completions/": {
            "post": {
                "summary": "Chat completion",
                "tags": ["LLM service API"],
                "security": BEARER,
                "description": "Runs as a background job like the web chat's. The trailing slash is optional, so "
                "OpenAI clients can use `/api` as their base URL. A client that disconnects from a "
                "stream cancels its job.",
                "parameters": [PROVIDER_QUERY],
                "requestBody": CHAT_BODY,
                "responses": CHAT_RESPONSES,
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This description",
                "tags": ["Documentation"],
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1 JSON."}},
            }
        },
        "/api/docs": {
            "get": {
                "summary": "This description as a page",
                "tags": ["Documentation"],
                "security": [],
                "responses": {
                    "200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/v1/models": {
            "get": {
                "summary": "List models (ids and aliases)",
                "tags": ["OpenAI-compatible API"],
                "security": BEARER,
                "responses": {
                    "200": {
                        "description": "The models this account may use, then their aliases.",
                        "content": _json(_ref("ModelList")),
                    },
                    "401": COMMON_ERRORS["401"],
                },
            }
        },
        "/v1/models/{model_id}": {
            "get": {
                "summary": "Retrieve a model",
                "tags": ["OpenAI-compatible API"],
                "security": BEARER,
                "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The model.", "content": _json(_ref("Model"))},
                    "401": COMMON_ERRORS["401"],
                    "403": COMPLETION_ERRORS["403"],
                    "404": COMPLETION_ERRORS["404"],
                },
            }
        },
        "/v1/chat/completions": {
            "post": {
                "summary": "Chat completion (OpenAI-compatible)",
                "tags": ["OpenAI-compatible API"],
                "security": BEARER,
                "requestBody": CHAT_BODY,
                "responses": CHAT_RESPONSES,
            }
        },
    },
}


def openapi_spec() -> dict:
    spec = deepcopy(SPEC)
    spec["servers"] = [{"url": request.host_url.rstrip("/")}]
    return spec
