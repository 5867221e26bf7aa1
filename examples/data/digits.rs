//! The handwritten digits data set (UCI "Optical Recognition of Handwritten Digits", the
//! copy scikit-learn ships as `load_digits`): 1797 images of 8x8 pixels with values 0 to
//! 16, labels 0 to 9. The data is compiled into the `smartcore` crate (its `datasets`
//! feature), so nothing is downloaded at run time.

use ferrax::prelude::*;

/// Images and labels.
pub struct Split {
    /// `[n, 64]` f32 pixels scaled to `[0, 1]`.
    pub images: Tensor,
    /// `[n]` i32 labels.
    pub labels: Tensor,
}

impl Split {
    /// The split with its tensors on `device`.
    pub fn to_device(&self, device: &Device) -> Split {
        Split {
            images: self.images.to_device(device),
            labels: self.labels.to_device(device),
        }
    }
}

/// The whole set, shuffled with `key` and split: the first `test` images for testing, the
/// rest for training.
pub fn load(key: Key, test: usize) -> (Split, Split) {
    let data = smartcore::dataset::digits::load_dataset();
    let (n, features) = (data.num_samples, data.num_features);
    assert_eq!(
        (n, features),
        (1797, 64),
        "unexpected digits data set shape"
    );
    let images = Tensor::from_vec(
        data.data.iter().map(|&v| v / 16.0).collect(),
        &[n, features],
    );
    let labels = Tensor::from_vec(data.target.iter().map(|&v| v as i32).collect(), &[n]);
    let order = shuffled(key, n);
    let part = |from: usize, to: usize| {
        let idx = order.slice(0, from, to);
        Split {
            images: images.index_select(0, &idx),
            labels: labels.index_select(0, &idx),
        }
    };
    (part(test, n), part(0, test))
}

/// A random permutation of `0..n` (sorting uniform draws).
pub fn shuffled(key: Key, n: usize) -> Tensor {
    let u = Tensor::uniform(key, &[n], 0.0, 1.0, DType::F64).to_vec::<f64>();
    let mut idx: Vec<i32> = (0..n as i32).collect();
    idx.sort_by(|&a, &b| u[a as usize].total_cmp(&u[b as usize]));
    Tensor::from_vec(idx, &[n])
}
