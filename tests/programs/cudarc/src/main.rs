//! A Rust program using cudarc's driver API: device queries, allocation, copies, memsets, streams,
//! events and an error path, checked against host-side references. Prints "cudarc_driver: PASSED".

use cudarc::driver::result;
use cudarc::driver::sys;
use cudarc::driver::CudaContext;

fn main() {
    let ctx = CudaContext::new(0).expect("CudaContext::new(0)");
    let name = ctx.name().expect("device name");
    let (major, minor) = (
        ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .unwrap(),
        ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .unwrap(),
    );
    println!("device 0: {name}, compute capability {major}.{minor}");
    assert!(major >= 1);

    let stream = ctx.default_stream();
    let host: Vec<u32> = (0..100_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let dev = stream.clone_htod(&host).expect("htod");
    let back = stream.clone_dtoh(&dev).expect("dtoh");
    assert_eq!(back, host, "round trip through device memory");

    let mut zeros = stream.alloc_zeros::<u64>(4096).expect("alloc_zeros");
    let z = stream.clone_dtoh(&zeros).expect("dtoh zeros");
    assert!(z.iter().all(|&v| v == 0));
    stream
        .memcpy_htod(&[7u64; 4096], &mut zeros)
        .expect("memcpy_htod");
    let s = stream.clone_dtoh(&zeros).unwrap();
    assert_eq!(s.iter().sum::<u64>(), 7 * 4096);

    // A second stream with an event between them.
    let other = ctx.new_stream().expect("new_stream");
    let ev = stream.record_event(None).expect("record_event");
    other.wait(&ev).expect("stream wait event");
    let copy = other.clone_dtoh(&dev).expect("dtoh on second stream");
    assert_eq!(copy, host);
    other.synchronize().expect("synchronize");

    // Error path: an absurd allocation fails with OUT_OF_MEMORY and the context stays usable.
    // SAFETY: raw driver call with a valid current context; the result is only inspected.
    let err = unsafe { result::malloc_sync(1 << 50) }.expect_err("2^50 bytes cannot be allocated");
    assert_eq!(err.0, sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY, "{err:?}");
    let again = stream
        .clone_dtoh(&dev)
        .expect("context usable after an error");
    assert_eq!(again, host);

    let (free, total) = result::mem_get_info().expect("mem_get_info");
    assert!(free <= total && total > 0);
    println!("cudarc_driver: PASSED");
}
