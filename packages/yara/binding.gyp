{
  # The addon links libyara and its dependencies statically from PIC-safe copies of the system
  # archives that scripts/build.js prepares in .deps/ (see the comment there).
  "targets": [
    {
      "target_name": "yara",
      "sources": ["src/yara.cc", "src/containers.cc", "src/content-signature.cc", "src/mapping-guard.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-fexceptions", "-std=gnu++17", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
      "libraries": [
        "-Wl,--exclude-libs,ALL",
        "-Wl,--as-needed",
        "<(module_root_dir)/.deps/libyara.a",
        "<(module_root_dir)/.deps/libarchive.a",
        "<(module_root_dir)/.deps/libmagic.a",
        "<(module_root_dir)/.deps/libjansson.a",
        "<(module_root_dir)/.deps/libcrypto.a",
        "<(module_root_dir)/.deps/libnettle.a",
        "<(module_root_dir)/.deps/libzstd.a",
        "<(module_root_dir)/.deps/liblz4.a",
        "<(module_root_dir)/.deps/libz.a",
        "<(module_root_dir)/.deps/libbz2.a",
        "<(module_root_dir)/.deps/liblzma.a",
        "-lm",
        "-ldl",
        "-lpthread"
      ]
    }
  ]
}
