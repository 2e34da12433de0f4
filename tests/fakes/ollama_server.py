class FakeOllamaServer: pass
