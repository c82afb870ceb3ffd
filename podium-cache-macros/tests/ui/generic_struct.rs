use podium_cache_core::Cacheable;

#[derive(Cacheable)]
#[cacheable(table = "Events")]
struct Event<T> {
    id: String,
    extra: T,
}

fn main() {}
