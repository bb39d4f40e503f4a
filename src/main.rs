fn main() {
    println!("readbot: under construction");
}
