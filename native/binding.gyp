{
  "targets": [
    {
      "target_name": "makemost_native",
      "sources": ["src/addon.cc", "src/addon_layers.cc", "src/kernels.cc", "src/kernels_avx2.cc", "src/kernels_generic.cc", "src/pool.cc"],
      "cflags_cc!": ["-fno-exceptions", "-O2", "-O0"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-ffp-contract=off", "-pthread", "-fvisibility=hidden"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=6"],
      "xcode_settings": {
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-math-errno"]
      }
    }
  ]
}
