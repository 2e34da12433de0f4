class FakeGeminiServer: pass
