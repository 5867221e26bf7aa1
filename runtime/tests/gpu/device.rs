//! Devices: moving tensors, dtype rules, mixing devices, printing.

use ferrax_runtime::prelude::*;

use crate::{gpu, tensor};

#[test]
fn tensors_round_trip_through_the_gpu() {
    let Some(dev) = gpu() else { return };
    assert!(dev.is_gpu());
    assert_eq!(dev.to_string(), "gpu:0");
    assert!(!dev.description().is_empty());
    let x = tensor(&[3, 4], 1, true);
    let g = x.to_device(&dev);
    assert_eq!(g.device(), dev);
    assert_eq!(g.to_device(&dev).device(), dev);
    let back = g.to_device(&Device::Cpu);
    assert_eq!(back.device(), Device::Cpu);
    assert_eq!(
        back.to_vec::<f32>()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        x.to_vec::<f32>()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    );
    let i = Tensor::from_vec(vec![1i32, -2, 3], &[3]).to_device(&dev);
    assert_eq!(i.to_vec::<i32>(), vec![1, -2, 3]);
    let b = Tensor::from_vec(vec![true, false, true], &[3]).to_device(&dev);
    assert_eq!(b.to_vec::<bool>(), vec![true, false, true]);
    assert_eq!(Tensor::scalar(2.5f32).to_device(&dev).item::<f32>(), 2.5);
    let empty = Tensor::zeros(&[0, 3], DType::F32).to_device(&dev);
    assert_eq!(empty.to_vec::<f32>(), Vec::<f32>::new());
    assert_eq!(empty.exp().shape(), &[0, 3]);
}

#[test]
fn f64_on_the_gpu_is_an_error_naming_the_operation() {
    let Some(dev) = gpu() else { return };
    let x = Tensor::ones(&[2], DType::F64);
    let e = x.try_to_device(&dev).unwrap_err().to_string();
    assert!(e.contains("to_device") && e.contains("f64"), "{e}");
    let g = Tensor::ones(&[2], DType::F32).to_device(&dev);
    let e = g.try_to_dtype(DType::F64).unwrap_err().to_string();
    assert!(e.contains("to_dtype") && e.contains("f64"), "{e}");
    let e = Tensor::try_full_on(&[2], 0.0, DType::F64, &dev)
        .unwrap_err()
        .to_string();
    assert!(e.contains("f64"), "{e}");
}

#[test]
fn mixing_devices_is_a_device_mismatch() {
    let Some(dev) = gpu() else { return };
    let c = Tensor::ones(&[2], DType::F32);
    let g = c.to_device(&dev);
    for r in [
        g.try_add(&c),
        c.try_mul(&g),
        g.try_lt(&c),
        Tensor::try_where_(&c.gt(&c), &g, &g),
    ] {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::DeviceMismatch { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("gpu:0") && msg.contains("cpu"), "{msg}");
        assert!(
            msg.contains("to_device") && msg.contains("full_on"),
            "{msg}"
        );
    }
    assert!(matches!(
        Tensor::try_concat(&[&g, &c], 0),
        Err(Error::DeviceMismatch { .. })
    ));
    assert!(matches!(
        g.try_index_select(0, &Tensor::from_vec(vec![0i32], &[1])),
        Err(Error::DeviceMismatch { .. })
    ));
}

#[test]
fn bad_input_is_refused_before_dispatch() {
    let Some(dev) = gpu() else { return };
    let a = Tensor::ones(&[2, 3], DType::F32).to_device(&dev);
    let e = a
        .try_add(&Tensor::ones(&[2], DType::F32).to_device(&dev))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "add: shapes [2, 3] and [2] cannot be broadcast together"
    );
    let i = Tensor::ones(&[2, 3], DType::I32).to_device(&dev);
    assert!(matches!(i.try_exp(), Err(Error::UnsupportedDType { .. })));
    assert!(matches!(
        a.try_sum_axis(2, false),
        Err(Error::BadAxis { .. })
    ));
    assert!(matches!(
        a.try_to_vec::<i32>(),
        Err(Error::ElementType { .. })
    ));
}

#[test]
fn gpu_tensors_print_like_cpu_ones() {
    let Some(dev) = gpu() else { return };
    let x = tensor(&[2, 3], 3, false);
    let g = x.to_device(&dev);
    let (cs, gs) = (format!("{x:?}"), format!("{g:?}"));
    assert_eq!(gs, cs.replace("device=cpu", "device=gpu:0"));
}

#[test]
fn long_chains_are_batched_and_stay_correct() {
    let Some(dev) = gpu() else { return };
    // more dispatches than one batch holds, buffers recycled along the way
    let x = tensor(&[64, 33], 5, false);
    let mut c = x.clone();
    let mut g = x.to_device(&dev);
    for k in 0..600 {
        let s = 1.0 + (k % 7) as f64 / 100.0;
        c = (&c * s).tanh() + &x;
        g = (&g * s).tanh() + &x.to_device(&dev);
    }
    g.eval();
    dev.synchronize().unwrap();
    Tensor::ones(&[2], DType::F32).eval();
    Device::Cpu.synchronize().unwrap();
    crate::assert_matches("600-step chain", &g, &c, 1e-4);
}

#[test]
fn default_device_follows_ferrax_device() {
    // Only what holds whatever the environment says: a valid choice, cached.
    match std::env::var("FERRAX_DEVICE").as_deref() {
        Ok("cpu") => assert_eq!(Device::default(), Device::Cpu),
        Ok("gpu") => assert!(Device::default().is_gpu()),
        _ => {
            let d = Device::try_default().expect("auto never fails");
            assert_eq!(Device::default(), d);
        }
    }
}

#[test]
fn the_tangent_algebra_works_on_gpu_tensors() {
    use ferrax_runtime::differentiable::unbroadcast;
    let Some(dev) = gpu() else { return };
    let (a, b) = (tensor(&[2, 3], 1, false), tensor(&[2, 3], 2, false));
    let cpu = (a.clone(), b.clone());
    let on_gpu = (a.to_device(&dev), b.to_device(&dev));
    let (zc, zg) = (cpu.zeros_like(), on_gpu.zeros_like());
    assert_eq!(zg.0.device(), dev);
    crate::assert_matches("zeros_like", &zg.1, &zc.1, 0.0);
    let (sc, sg) = (cpu.add(&cpu).scale(0.5), on_gpu.add(&on_gpu).scale(0.5));
    crate::assert_matches("add + scale", &sg.0, &sc.0, 0.0);
    let mut acc = on_gpu.clone();
    acc.add_assign(&on_gpu);
    crate::assert_matches("add_assign", &acc.1, &(&b + &b), 0.0);
    for shape in [&[3][..], &[2, 1], &[], &[2, 3]] {
        let what = format!("unbroadcast {shape:?}");
        crate::assert_matches(
            &what,
            &unbroadcast(&on_gpu.0, shape),
            &unbroadcast(&a, shape),
            1e-6,
        );
    }
}

#[test]
fn requests_beyond_the_limits_are_errors() {
    // (Lost devices and uncaught GPU errors become errors too, reported by the next
    // readback or wait; they cannot be provoked on demand here.)
    let Some(dev) = gpu() else { return };
    let huge = Tensor::try_full_on(&[1 << 20, 1 << 20], 0.0, DType::F32, &dev)
        .and_then(|t| t.try_exp())
        .and_then(|t| t.try_sum());
    let e = huge.unwrap_err().to_string();
    assert!(e.contains("bytes") || e.contains("elements"), "{e}");
}

#[test]
fn dispatches_beyond_65535_workgroups_are_split() {
    let Some(dev) = gpu() else { return };
    // 17M elements: 66,407 workgroups of 256 for an elementwise kernel
    let n = 17_000_000;
    let x = Tensor::ones(&[n], DType::F32).to_device(&dev);
    let y = &x * 2.0 + 1.0;
    y.eval();
    let tail = y.slice(0, n - 3, n).to_vec::<f32>();
    assert_eq!(tail, vec![3.0; 3]);
    assert_eq!(y.slice(0, 0, 1).item::<f32>(), 3.0);
    // 70,000 lanes of 65: one workgroup per lane
    let m = Tensor::ones(&[70_000, 65], DType::F32).to_device(&dev);
    let s = (&m * 0.5).sum_axis(1, false).to_vec::<f32>();
    assert_eq!(s.len(), 70_000);
    assert!(s.iter().all(|&v| v == 32.5), "{:?}", &s[69_990..]);
}

/// Gradients start from lazy zeros, broadcast views of one shared zero on the tensor's
/// device: a leaf with one contribution becomes it, and adding into a lazy zero, in
/// place or not, leaves the shared zero untouched.
#[test]
fn lazy_zeros_on_the_gpu_take_contributions_and_stay_zero() {
    use ferrax_runtime::differentiable::{accumulate, is_lazy_zero, lazy_zero};
    let Some(dev) = gpu() else { return };
    let t = Tensor::ones(&[3, 4], DType::F32).to_device(&dev);
    let z = lazy_zero(&t);
    assert!(is_lazy_zero(&z) && z.device() == dev && z.shape() == [3, 4]);
    assert!(!is_lazy_zero(&t) && !is_lazy_zero(&t.zeros_like()));

    let mut row = lazy_zero(&t);
    row += &Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[4]).to_device(&dev);
    assert_eq!(row.sum().item::<f32>(), 30.0);
    let mut whole = lazy_zero(&t);
    whole.add_assign(&t);
    assert_eq!(whole.sum().item::<f32>(), 12.0);

    let g = (&t * 2.0).exp();
    let mut acc = (lazy_zero(&t), 0.0f32);
    accumulate(&mut acc, &(g.clone(), 1.0));
    assert!(
        !is_lazy_zero(&acc.0),
        "the first contribution replaces the zero"
    );
    accumulate(&mut acc, &(t.clone(), 1.0));
    let want = 12.0 * (2f32.exp() + 1.0);
    assert!((acc.0.sum().item::<f32>() - want).abs() < 1e-3 * want && acc.1 == 2.0);
    assert_eq!(
        lazy_zero(&t).sum().item::<f32>(),
        0.0,
        "the shared zero is still zero"
    );
}

/// `Differentiable::eval` computes every tensor leaf, whatever the devices of a structure.
#[test]
fn eval_of_a_structure_computes_every_leaf_on_every_device() {
    let Some(dev) = gpu() else { return };
    let x = tensor(&[5, 3], 4, false);
    let g = x.to_device(&dev);
    let step = ((&g * 2.0).exp(), vec![g.tanh(), (&x * 2.0).exp()], 3.5f32);
    step.eval();
    step.try_eval()
        .expect("a second eval has nothing left to do");
    assert_eq!(step.0.device(), dev);
    assert_eq!(step.1[1].device(), Device::Cpu);
    let want = (&x * 2.0).exp().to_vec::<f32>();
    for (a, b) in step.0.to_vec::<f32>().iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0));
    }
    assert_eq!(step.1[1].to_vec::<f32>(), want);
    ((), 1.0f64).eval(); // no tensors: nothing to do
}
