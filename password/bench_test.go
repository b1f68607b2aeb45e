package password

import "testing"

// Run with -benchmem: both spend one pbkdf2_sha256 run at DefaultIterations.
func BenchmarkCheckPBKDF2SHA256Default(b *testing.B) {
	encoded, err := Make("correct horse battery staple", 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := Check("correct horse battery staple", encoded); !ok {
			b.Fatal("no match")
		}
	}
}

func BenchmarkDummy(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Dummy("correct horse battery staple")
	}
}
