use podium_cache_core::Cacheable;

#[derive(Cacheable)]
#[cacheable(table = "Events")]
enum Event {
    Talk { id: String },
}

fn main() {}
