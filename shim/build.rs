fn main() {
    // The shim replaces NVIDIA's driver library: loaders and programs look for this SONAME.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so.1");
    // Background threads run our code: never let the library be unloaded under them.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
