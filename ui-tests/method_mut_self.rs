// Methods taking `&mut self` (a derivative cannot write through it) or `self` by value.
use ferrax::prelude::*;

struct State {
    k: f64,
}

impl State {
    #[grad]
    fn step(&mut self, x: f64) -> f64 {
        self.k * x
    }

    #[grad]
    fn consume(self, x: f64) -> f64 {
        self.k * x
    }
}

fn main() {}
