//! A missing adapter is a clear error that says how to get one, never a panic.

use centerloss::{Error, GpuContext};

#[test]
fn unmatched_adapter_name_is_no_adapter_with_advice() {
    // This binary holds this one test, so changing the environment races with nothing.
    std::env::set_var("WGPU_ADAPTER_NAME", "no-such-adapter-anywhere");
    let err = GpuContext::new().unwrap_err();
    assert!(matches!(err, Error::NoAdapter(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("no-such-adapter-anywhere"), "{msg}");
    assert!(msg.contains("apt-get install mesa-vulkan-drivers"), "{msg}");
}
